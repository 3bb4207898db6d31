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
