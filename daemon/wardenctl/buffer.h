/* SPDX-License-Identifier: MIT */
/* A growing byte buffer, NUL-terminated once it holds anything. */
#pragma once

#include <stddef.h>

typedef struct Buffer {
	char *data;
	size_t size;
	size_t cap; /* bytes allocated at data; grows by doubling */
} Buffer;

void buffer_done(Buffer *b);
int buffer_append(Buffer *b, const void *p, size_t n);
/* Reads FILE ("-": stdin), at most max bytes (else -EFBIG). */
int buffer_read_file(const char *file, size_t max, Buffer *ret);
/* Writes FILE ("-": stdout) through a temporary file beside it, renamed
 * into place only when complete. */
int buffer_write_file_atomic(const char *file, const void *data, size_t size);
