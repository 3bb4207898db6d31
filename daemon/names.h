/* SPDX-License-Identifier: MIT */
/*
 * The names that come from outside, one rule each: wardend (config, store,
 * API) and wardenctl use these same functions, so that the CLI refuses
 * locally what the daemon would refuse. The rules are the API contract;
 * api/openapi.yaml (CellName, ImageName, IdempotencyKey) says the same, and
 * tests/unit/test-names.c pins the edges.
 */
#pragma once

#include <stdbool.h>

#define NAMES_STR_(x) #x
#define NAMES_STR(x) NAMES_STR_(x)

/* A cell name is a URL path component and a directory name. */
#define CELL_NAME_MAX 31
#define CELL_NAME_RULE "1 to " NAMES_STR(CELL_NAME_MAX) " of [a-z0-9_-], starting with a letter or a digit"

/* An image is a file in the cell's store directory: never hidden, and never
 * one of the store's temp names (*.tmp.*, .upload-*). */
#define IMAGE_NAME_MAX 64
#define IMAGE_NAME_RULE "1 to " NAMES_STR(IMAGE_NAME_MAX) " of [A-Za-z0-9._-], not starting with '.'"

/* Keys travel in an HTTP header, and are printed in messages: no blanks. */
#define IDEMPOTENCY_KEY_MAX 128
#define IDEMPOTENCY_KEY_RULE "1 to " NAMES_STR(IDEMPOTENCY_KEY_MAX) " printable ASCII characters, no spaces"

bool names_cell_valid(const char *s);
bool names_image_valid(const char *s);
bool names_idempotency_key_valid(const char *s);
