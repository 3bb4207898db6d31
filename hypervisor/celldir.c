/* SPDX-License-Identifier: MIT */
/*
 * The cell directory and the sockets and lock files in it, for every
 * backend whose cells are processes that outlive the daemon. Never logs;
 * returns negative errno.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "backend-internal.h"
#include "celldir.h"

int celldir_open(const char *path, bool create)
{
	int fd;

	if (create) {
		int r = backend_mkdir_p(path);
		if (r < 0)
			return r;
	}
	fd = open(path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Through the directory fd, so the runtime path length never matters. */
static void socket_address(int dir_fd, const char *name, struct sockaddr_un *sa)
{
	*sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
	snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", dir_fd, name);
}

int celldir_connect(int dir_fd, const char *name, int type)
{
	struct sockaddr_un sa;
	int fd;

	socket_address(dir_fd, name, &sa);
	fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		close(fd);
		/* No socket, or nobody behind it: no live process. */
		return r == -ECONNREFUSED ? -ENOENT : r;
	}
	return fd;
}

int celldir_listen(int dir_fd, const char *name, int backlog)
{
	struct sockaddr_un sa;
	int fd;

	socket_address(dir_fd, name, &sa);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	(void)unlinkat(dir_fd, name, 0);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, backlog) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int celldir_lock_holder(int dir_fd, const char *name, pid_t *ret)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return errno == ENOENT ? -ENOENT : -errno;
	if (fcntl(fd, F_GETLK, &fl) < 0)
		r = -errno;
	else if (fl.l_type == F_UNLCK || fl.l_pid <= 0)
		r = -ENOENT;
	else
		*ret = fl.l_pid;
	/* We never hold a lock on it, so closing drops nothing. */
	close(fd);
	return r;
}
