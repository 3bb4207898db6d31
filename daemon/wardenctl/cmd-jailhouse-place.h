/* SPDX-License-Identifier: MIT */
/*
 * wardenctl jailhouse place: where `jailhouse cell linux` would put a Linux
 * kernel, DTB and initrd in an arm64 cell, printed as JSON, and the DTB
 * patched for the cell written out, as `jailhouse cell linux
 * --write-params` does. Offline: it never talks to the daemon.
 */
#pragma once

#include "args.h"

int cmd_jailhouse_place(const Options *o, const char *verb, char **args);
