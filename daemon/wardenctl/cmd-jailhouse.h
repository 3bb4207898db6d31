/* SPDX-License-Identifier: MIT */
/*
 * wardenctl jailhouse import|export: Jailhouse binary configs to warden
 * JSON and back. Offline: these never talk to the daemon.
 */
#pragma once

#include "args.h"

int cmd_jailhouse_import(const Options *o, const char *verb, char **args);
int cmd_jailhouse_export(const Options *o, const char *verb, char **args);
