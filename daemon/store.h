/* SPDX-License-Identifier: MIT */
/*
 * The durable cell store under the state directory:
 *
 *   STATE_DIR/seeded                  the config file has seeded the store
 *   STATE_DIR/cells/NAME/spec.json    {"revision": N, "spec": {...}}
 *   STATE_DIR/cells/NAME/images/FILE  uploaded images
 *   STATE_DIR/cells/NAME/supervision.json  (persist.c)
 *
 * The config file's cells seed the store on the first start; from then on
 * the store is authoritative. Every file is replaced atomically; an upload
 * is written to a hidden temp file and renamed into place only once its
 * digest checks out. Leftover temp files from a killed daemon are swept at
 * startup and never listed.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"

typedef struct Manager Manager;

bool store_is_seeded(Manager *m);
int store_mark_seeded(Manager *m);
/* Forget every stored spec (wardend --reseed). */
int store_reset(Manager *m);
/* Remove temp files a killed daemon left behind. */
void store_sweep(Manager *m);

int store_save_spec(Manager *m, const CellSpec *s, uint64_t revision);
/* The spec file goes first (durably), then images and history. */
int store_remove_cell(Manager *m, const char *name);
/* Loads every stored spec: an array of {"revision", "spec"} (json). */
int store_load_specs(Manager *m, json_t **ret);
/* Stored specs that are no cell: they did not load at startup and stay on
 * disk untouched, so that nothing acknowledged is lost without a trace.
 * [{name, path, reason}], the reason found again now. */
json_t *store_broken_specs(Manager *m);

/* Resolves a spec's image reference: bare names are uploaded images;
 * absolute paths resolved (imagepath.h), -EPERM outside api.image_dirs. */
int store_image_path(Manager *m, const char *cell, const char *file, char *buf, size_t size);
bool store_image_exists(Manager *m, const char *cell, const char *file);
/* [{name, size, sha256}] */
json_t *store_list_images(Manager *m, const char *cell);
int store_remove_image(Manager *m, const char *cell, const char *file);

/* A streamed upload in progress. */
typedef struct Upload Upload;
int upload_begin(Manager *m, const char *cell, const char *file, Upload **ret);
int upload_write(void *userdata, const void *data, size_t n);
void upload_abort(void *userdata);
/* Checks the digest (-EBADMSG on mismatch), fsyncs and renames into
 * place. *ret_replaced tells whether an image of that name existed. The
 * upload is freed in every case. */
int upload_commit(Upload *u, const uint8_t want_sha256[32], bool *ret_replaced, char sha256_hex[65], size_t *ret_size);
/* The file the body went to, until commit or abort (to check it first). */
const char *upload_temp_path(const Upload *u);
