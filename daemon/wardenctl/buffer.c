/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buffer.h"
#include "macro.h"

void buffer_done(Buffer *b) {
	free(b->data);
	*b = (Buffer){ 0 };
}

/* The capacity doubles, so that reading a file of N bytes in chunks
 * copies O(N) bytes, not O(N^2 / chunk): a 19 MB kernel image took 17 s
 * under ASan, whose realloc always moves, with a realloc per chunk. */
int buffer_append(Buffer *b, const void *p, size_t n) {
	size_t need;

	if (n > SIZE_MAX - b->size - 1)
		return -ENOMEM;
	need = b->size + n + 1;
	if (need > b->cap || !b->data) {
		size_t cap = b->cap > 64 ? b->cap : 64;
		char *d;
		while (cap < need)
			cap = cap > SIZE_MAX / 2 ? need : cap * 2;
		d = realloc(b->data, cap);
		if (!d)
			return -ENOMEM;
		b->data = d;
		b->cap = cap;
	}
	if (n)
		memcpy(b->data + b->size, p, n);
	b->size += n;
	b->data[b->size] = 0;
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

/* Into a temporary file beside the target, then renamed: a failed write
 * never leaves half a file where a tool would load it. */
int buffer_write_file_atomic(const char *file, const void *data, size_t size) {
	_cleanup_free_ char *tmp = NULL;
	const uint8_t *p = data;
	size_t done = 0;
	int fd, r = 0;

	if (streq(file, "-"))
		return fwrite(data, 1, size, stdout) == size ? 0 : -EIO;
	if (asprintf(&tmp, "%s.tmp.XXXXXX", file) < 0)
		return -ENOMEM;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (r == 0 && done < size) {
		ssize_t n = write(fd, p + done, size - done);
		if (n < 0 && errno != EINTR)
			r = -errno;
		else if (n > 0)
			done += (size_t)n;
	}
	/* The umask decides, as for cp. */
	if (r == 0 && fchmod(fd, 0666 & ~umask(umask(0))) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, file) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}
