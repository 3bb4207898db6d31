/* SPDX-License-Identifier: MIT */
/*
 * The warden JSON form of Jailhouse configs (docs/jailhouse-configs.md):
 * the model of cell-config.h as a JSON document and back, losslessly, so
 * that import (decode, to_json) then export (from_json, encode) reproduces
 * the file byte for byte.
 *
 * Addresses, sizes, masks and 64-bit values are written as "0x…" strings
 * (a JSON integer cannot hold every u64); counts and small ids as integers.
 * Readers accept either form for any number. Flags are arrays of names;
 * bits without a name stay as "0x…" items, enums without a name as numbers,
 * so nothing is lost. Unknown keys are refused. Errors name the JSON path
 * ("$.root_cell.memory[3].flags[1]: …").
 */
#pragma once

#include <jansson.h>

#include "cell-config.h"

/* "cell" or "system": the document's "jailhouse" key. */
int jh_config_json_kind(const json_t *doc, JhConfigKind *ret_kind, char *err, size_t err_size);

int jh_cell_config_to_json(const JhCellConfig *c, json_t **ret, char *err, size_t err_size);
int jh_system_config_to_json(const JhSystemConfig *s, json_t **ret, char *err, size_t err_size);

/* The document's "revision" (default JH_REVISION_DEFAULT) and
 * "architecture" (default unspecified) go into the model; callers may
 * override them before encoding. */
int jh_cell_config_from_json(const json_t *doc, JhCellConfig **ret, char *err, size_t err_size);
int jh_system_config_from_json(const json_t *doc, JhSystemConfig **ret, char *err, size_t err_size);
