/* SPDX-License-Identifier: MIT */
/* wardenctl health, metrics and hypervisor: the daemon and the hypervisor as a whole. */
#pragma once

#include "args.h"

int cmd_health(const Options *o, const char *verb, char **args);
int cmd_metrics(const Options *o, const char *verb, char **args);
int cmd_hypervisor_show(const Options *o, const char *verb, char **args);
int cmd_hypervisor_action(const Options *o, const char *verb, char **args);
