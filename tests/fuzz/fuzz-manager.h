/* SPDX-License-Identifier: MIT */
/*
 * The daemon as the in-process fuzz targets run it: a real Manager (config,
 * store, cells, operations, API) in a fresh state directory on tmpfs, with
 * no listeners and backends that can start nothing (the runner and QEMU
 * paths do not exist), so that a fuzz input never spawns a process. Logging
 * is off unless FUZZ_LOG is set.
 */
#pragma once

#include "manager.h"

/* The bearer tokens the Manager knows (configs/demo-tokens). */
#define FUZZ_TOKEN_OPERATOR "warden-demo-operator"
#define FUZZ_TOKEN_MONITOR "warden-demo-monitor"

/* cells_json: the config's "cells" array, as JSON text. Aborts on failure:
 * a target without its daemon has nothing to fuzz. */
Manager *fuzz_manager_new(const char *cells_json);
/* Frees the Manager and removes its directory. */
void fuzz_manager_free(Manager *m);
/* Runs what the loop has ready (backend completions, deferred saves)
 * without waiting. */
void fuzz_manager_settle(Manager *m);
