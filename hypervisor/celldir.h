/* SPDX-License-Identifier: MIT */
/*
 * A cell's directory, runtime_dir/cells/NAME, which holds the sockets and
 * files through which a backend finds the process of a cell again after a
 * daemon restart. Everything is reached through the directory's fd, so no
 * path length limit of sockaddr_un ever applies. Only hypervisor/ includes
 * this.
 */
#ifndef WARDEN_HYPERVISOR_CELLDIR_H
#define WARDEN_HYPERVISOR_CELLDIR_H

#include <stdbool.h>
#include <sys/types.h>

/* The directory's fd (O_DIRECTORY, close-on-exec), creating it and its
 * parents first when `create`; or -errno. */
int celldir_open(const char *path, bool create);
/* A socket of `type` (SOCK_STREAM, SOCK_SEQPACKET) connected to the socket
 * file `name` in the directory; -ENOENT when nobody listens there. */
int celldir_connect(int dir_fd, const char *name, int type);
/* A listening SOCK_STREAM socket bound to `name`, replacing a stale file. */
int celldir_listen(int dir_fd, const char *name, int backlog);
/* The pid holding a write lock on the file `name` (fcntl F_GETLK), as
 * QEMU does on its pid file for its life; -ENOENT if nobody holds one. */
int celldir_lock_holder(int dir_fd, const char *name, pid_t *ret);

#endif /* WARDEN_HYPERVISOR_CELLDIR_H */
