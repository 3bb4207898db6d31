/* SPDX-License-Identifier: MIT */
/* wardenctl cell images and cell upload: a cell's uploaded images. */
#pragma once

#include "args.h"

int cmd_cell_images(const Options *o, const char *verb, char **args);
int cmd_cell_upload(const Options *o, const char *verb, char **args);
