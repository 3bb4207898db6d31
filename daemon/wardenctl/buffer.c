/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buffer.h"
#include "macro.h"

void buffer_done(Buffer *b) {
	free(b->data);
	*b = (Buffer){ 0 };
}

int buffer_append(Buffer *b, const void *p, size_t n) {
	char *d;

	if (n > SIZE_MAX - b->size - 1)
		return -ENOMEM;
	d = realloc(b->data, b->size + n + 1);
	if (!d)
		return -ENOMEM;
	memcpy(d + b->size, p, n);
	b->data = d;
	b->size += n;
	d[b->size] = 0;
	return 0;
}

int buffer_read_file(const char *file, size_t max, Buffer *ret) {
	_cleanup_fclose_ FILE *opened = NULL;
	FILE *f = stdin;
	char buf[16384];
	size_t n;

	if (!streq(file, "-")) {
		f = opened = fopen(file, "re");
		if (!f)
			return -errno;
	}
	while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
		if (ret->size + n > max)
			return -EFBIG;
		if (buffer_append(ret, buf, n) < 0)
			return -ENOMEM;
	}
	if (ferror(f))
		return -EIO;
	return buffer_append(ret, "", 0); /* NUL-terminated even when empty */
}
