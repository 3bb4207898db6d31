/* SPDX-License-Identifier: MIT */
/*
 * Durable state under the state directory. Every file is written whole and
 * atomically (temp file, fsync, rename, fsync of the directory), so a daemon
 * killed at any instant leaves either the old or the new file, never a mix.
 */
#pragma once

#include <stddef.h>

#include <jansson.h>

typedef struct Cell Cell;

int write_file_atomic(const char *path, const void *data, size_t size, unsigned mode);
int write_json_atomic(const char *path, json_t *j);
int mkdir_p(const char *path, unsigned mode);
/* Reads a whole (small) file, NUL-terminated. */
int read_text_file(const char *path, char **ret);
/* fsync the directory holding `path` (after a rename or unlink there). */
int fsync_dir_of(const char *path);

/* Supervision state of one cell (restarts, failures, policy, a pending
 * restart) in STATE_DIR/cells/NAME/supervision.json. */
int persist_save_cell(Cell *c);
int persist_load_cell(Cell *c);
