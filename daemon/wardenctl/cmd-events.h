/* SPDX-License-Identifier: MIT */
/* wardenctl events: the daemon's event stream (SSE), resumed where it broke off. */
#pragma once

#include "args.h"

int cmd_events(const Options *o, const char *verb, char **args);
