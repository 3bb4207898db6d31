/* SPDX-License-Identifier: MIT */
/*
 * The qemu backend: every cell is one qemu-system-x86_64 process running a
 * Linux inmate, driven over QMP. The comm region is an ivshmem-plain device
 * backed by a file in the cell directory that the daemon maps too; the
 * console is a file QEMU appends to; the QMP socket is the event fd.
 *
 * QEMU survives the daemon (own session, no inherited fds); a restarted
 * daemon re-adopts it from the cell directory: the pid comes from the lock
 * QEMU holds on its pid file, the state from QMP query-status.
 *
 * Runs inside the single-threaded daemon: no threads, no logging, every
 * wait bounded. See README.md beside this file for the command line and
 * what was measured.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../backend-internal.h"

#ifndef P_PIDFD
#define P_PIDFD 3 /* glibc < 2.36 lacks it; the kernel has had it since 5.4 */
#endif

#define DEFAULT_ACCEL "tcg"
#define DEFAULT_MACHINE "pc"

#define QMP_TIMEOUT_MS 5000     /* any QMP command; QEMU answers in < 1 ms */
#define STARTUP_BASE_MS 5000    /* spawn -> QMP ready, plus per MiB of RAM: */
#define STARTUP_PER_MIB_MS 10   /* -mem-prealloc touches every page first */
#define QUIT_TIMEOUT_MS 3000    /* QMP quit -> process gone, then SIGKILL */
#define KILL_TIMEOUT_MS 2000
#define QMP_BUF_SIZE 16384
#define CONSOLE_ROTATE_BYTES (1u << 20)
#define MAX_ARGS 64
#define CMDLINE_MAX 4096

/* Files in runtime_dir/cells/NAME. QEMU runs with that as its cwd, so it
 * names them relative and no path length limit applies. */
#define FILE_QMP "qmp.sock"
#define FILE_PID "pid"
#define FILE_COMM "comm"
#define FILE_CONSOLE "console.log"
#define FILE_CONSOLE_OLD "console.log.1"
#define FILE_LOG "qemu.log"
#define FILE_LOG_OLD "qemu.log.1"
#define FILE_STATE "backend-state"

typedef struct QemuBackend {
	Backend base;
	char *cells_dir;
	char *binary;
	char *accel;
	char *machine;
	char *firmware; /* qboot beside the binary, or NULL for QEMU's default */
} QemuBackend;

/* What a kernel or initrd file was when QEMU read it: QEMU keeps the
 * images it loaded at start-up, so a changed file needs a new process. */
typedef struct ImageId {
	bool set;
	uint64_t dev, ino, size, mtime_ns;
} ImageId;

typedef struct QemuCell {
	BackendCell base;
	QemuBackend *backend;
	char *name;
	char *dir;
	int dir_fd;
	int qmp_fd;
	int pidfd;
	int console_fd;
	pid_t pid;
	bool exited;
	bool destroyed;
	bool loaded;
	bool fresh;     /* at power-on state: reset (or -S) and not run since */
	bool saw_reset; /* QEMU reported the host reset we asked for */
	char exit_reason[64];
	volatile struct warden_comm *comm;
	size_t comm_size;

	/* QMP input not processed yet; a line longer than the buffer is
	 * dropped (rskip) rather than misparsed. */
	char rbuf[QMP_BUF_SIZE];
	size_t rlen;
	bool rskip;
	bool qmp_eof;
	unsigned next_id;

	/* The machine as we know it from our commands and QEMU's events. */
	BackendCellState state;
	char reason[BACKEND_REASON_LEN];
	uint64_t state_mono_ns;
	uint64_t boots;

	char *kernel;
	char *initrd;
	ImageId kernel_id;
	ImageId initrd_id;
} QemuCell;

static const BackendOps qemu_backend_ops;
static const BackendCellOps qemu_cell_ops;

/* ---- small helpers ------------------------------------------------- */

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int remaining_ms(uint64_t deadline)
{
	uint64_t now = now_ns(CLOCK_MONOTONIC);

	if (now >= deadline)
		return 0;
	return (int)((deadline - now + 999999) / 1000000);
}

/* A QEMU option value we put inside a comma-separated list. */
static bool option_value_valid(const char *s)
{
	if (!s || !*s || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("-_.", *s))
			return false;
	return true;
}

static int image_id(const char *path, ImageId *ret)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	*ret = (ImageId){
		.set = true,
		.dev = (uint64_t)st.st_dev,
		.ino = (uint64_t)st.st_ino,
		.size = (uint64_t)st.st_size,
		.mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000ull + (uint64_t)st.st_mtim.tv_nsec,
	};
	return 0;
}

static bool image_changed(const char *path, const ImageId *id)
{
	ImageId now = { 0 };

	if (!path || !id->set)
		return false;
	if (image_id(path, &now) < 0)
		return true;
	return now.dev != id->dev || now.ino != id->ino || now.size != id->size ||
	       now.mtime_ns != id->mtime_ns;
}

/* ---- a minimal reader for QMP's one-object-per-line JSON ------------- */

static const char *json_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	return p;
}

/* Past the string starting at p (which points at the opening quote). */
static const char *json_skip_string(const char *p)
{
	for (p++; *p && *p != '"'; p++)
		if (*p == '\\' && p[1])
			p++;
	return *p ? p + 1 : NULL;
}

/* Past the value starting at p; NULL if malformed. */
static const char *json_skip_value(const char *p)
{
	int depth = 0;

	p = json_ws(p);
	if (*p == '"')
		return json_skip_string(p);
	if (*p != '{' && *p != '[') {
		/* number, true, false, null */
		while (*p && !strchr(",}] \t\r\n", *p))
			p++;
		return p;
	}
	do {
		if (*p == '"') {
			p = json_skip_string(p);
			if (!p)
				return NULL;
			continue;
		}
		if (*p == '{' || *p == '[')
			depth++;
		else if (*p == '}' || *p == ']')
			depth--;
		else if (!*p)
			return NULL;
		p++;
	} while (depth > 0);
	return p;
}

/* The value of member `key` of the object at p, or NULL. Only the
 * object's own members are looked at, not nested ones. */
static const char *json_member(const char *p, const char *key)
{
	size_t klen = strlen(key);

	p = json_ws(p);
	if (*p != '{')
		return NULL;
	p = json_ws(p + 1);
	while (*p == '"') {
		const char *k = p + 1, *end = json_skip_string(p);
		if (!end)
			return NULL;
		bool match = (size_t)(end - 1 - k) == klen && memcmp(k, key, klen) == 0;
		p = json_ws(end);
		if (*p != ':')
			return NULL;
		p = json_ws(p + 1);
		if (match)
			return p;
		p = json_skip_value(p);
		if (!p)
			return NULL;
		p = json_ws(p);
		if (*p != ',')
			return NULL;
		p = json_ws(p + 1);
	}
	return NULL;
}

/* Copies a JSON string value (escapes reduced to the escaped byte). */
static bool json_string(const char *v, char *out, size_t n)
{
	size_t i = 0;

	if (!v || *v != '"' || n == 0)
		return false;
	for (v++; *v && *v != '"'; v++) {
		if (*v == '\\' && v[1])
			v++;
		if (i + 1 < n)
			out[i++] = *v;
	}
	out[i] = 0;
	return *v == '"';
}

static bool json_streq(const char *v, const char *s)
{
	char buf[64];
	return json_string(v, buf, sizeof(buf)) && strcmp(buf, s) == 0;
}

static bool json_true(const char *v)
{
	return v && strncmp(v, "true", 4) == 0;
}

static bool json_u64(const char *v, uint64_t *ret)
{
	char *end;

	if (!v || !isdigit((unsigned char)*v))
		return false;
	errno = 0;
	*ret = strtoull(v, &end, 10);
	return errno == 0 && end != v;
}

/* ---- cell state ---------------------------------------------------- */

static void set_state(QemuCell *c, BackendCellState s, const char *reason, uint64_t mono_ns)
{
	c->state = s;
	snprintf(c->reason, sizeof(c->reason), "%s", reason ? reason : "");
	c->state_mono_ns = mono_ns ? mono_ns : now_ns(CLOCK_MONOTONIC);
}

/* QEMU stamps events with the host's wall clock: turn that into our
 * CLOCK_MONOTONIC, so a panic is dated when QEMU saw it, not when the
 * daemon got round to reading the socket. */
static uint64_t event_mono_ns(const char *line)
{
	const char *ts = json_member(line, "timestamp");
	uint64_t sec, usec;
	uint64_t mono = now_ns(CLOCK_MONOTONIC), real = now_ns(CLOCK_REALTIME);

	if (!ts || !json_u64(json_member(ts, "seconds"), &sec) ||
	    !json_u64(json_member(ts, "microseconds"), &usec))
		return mono;
	uint64_t ev = sec * 1000000000ull + usec * 1000ull;
	if (ev >= real || real - ev > mono)
		return mono;
	return mono - (real - ev);
}

static bool inmate_started(const QemuCell *c)
{
	return c->comm && __atomic_load_n(&c->comm->magic, __ATOMIC_ACQUIRE) == WARDEN_COMM_MAGIC;
}

static void handle_event(QemuCell *c, const char *line, const char *name)
{
	const char *data = json_member(line, "data");
	uint64_t at = event_mono_ns(line);

	if (json_streq(name, "GUEST_PANICKED") || json_streq(name, "GUEST_CRASHLOADED")) {
		set_state(c, BACKEND_CELL_FAILED, "guest panicked", at);
	} else if (json_streq(name, "SHUTDOWN")) {
		const char *why = data ? json_member(data, "reason") : NULL;
		if (!data || !json_true(json_member(data, "guest")))
			return; /* quit, a signal: the pidfd tells the rest */
		if (json_streq(why, "guest-panic"))
			set_state(c, BACKEND_CELL_FAILED, "guest panicked", at);
		else if (json_streq(why, "guest-reset"))
			set_state(c, BACKEND_CELL_SHUTDOWN, "guest reset (reboot or triple fault)", at);
		else
			set_state(c, BACKEND_CELL_HALTED, "guest powered off", at);
		c->fresh = false;
	} else if (json_streq(name, "RESET")) {
		if (!data || !json_true(json_member(data, "guest"))) {
			c->saw_reset = true;
			return;
		}
		/* SeaBIOS resets the machine once by itself after every host
		 * reset: only a reset of a booted inmate is a failure. */
		if (c->state == BACKEND_CELL_RUNNING && inmate_started(c))
			set_state(c, BACKEND_CELL_SHUTDOWN, "guest reset (reboot or triple fault)", at);
	} else if (json_streq(name, "STOP")) {
		if (c->state == BACKEND_CELL_RUNNING)
			set_state(c, BACKEND_CELL_STOPPED, "paused", at);
	} else if (json_streq(name, "RESUME")) {
		if (c->state == BACKEND_CELL_STOPPED)
			set_state(c, BACKEND_CELL_RUNNING, "", at);
	}
}

/* ---- QMP ----------------------------------------------------------- */

typedef struct QmpReply {
	unsigned id;   /* the reply we wait for, 0 for none */
	bool found;
	int error;     /* 0, or -EIO for an "error" reply */
	char status[32]; /* query-status: return.status */
	char desc[128];  /* error.desc */
} QmpReply;

static void handle_line(QemuCell *c, const char *line, QmpReply *want)
{
	const char *v;
	uint64_t id;

	v = json_member(line, "event");
	if (v) {
		handle_event(c, line, v);
		return;
	}
	if (!want || want->id == 0 || !json_u64(json_member(line, "id"), &id) || id != want->id)
		return; /* a greeting, or a late answer to a request we gave up on */
	want->found = true;
	v = json_member(line, "error");
	if (v) {
		want->error = -EIO;
		json_string(json_member(v, "desc"), want->desc, sizeof(want->desc));
		return;
	}
	v = json_member(line, "return");
	if (v)
		json_string(json_member(v, "status"), want->status, sizeof(want->status));
}

/* Dispatch every complete line in the buffer. */
static void qmp_process(QemuCell *c, QmpReply *want)
{
	char *start = c->rbuf, *end = c->rbuf + c->rlen, *nl;

	while ((nl = memchr(start, '\n', (size_t)(end - start)))) {
		*nl = 0;
		if (c->rskip)
			c->rskip = false;
		else
			handle_line(c, start, want);
		start = nl + 1;
	}
	c->rlen = (size_t)(end - start);
	memmove(c->rbuf, start, c->rlen);
	if (c->rlen == sizeof(c->rbuf) - 1) {
		c->rlen = 0;
		c->rskip = true;
	}
}

/* Read what is there without blocking and dispatch it. */
static int qmp_drain(QemuCell *c, QmpReply *want)
{
	if (c->qmp_fd < 0 || c->qmp_eof)
		return -ESRCH;
	for (;;) {
		ssize_t n = recv(c->qmp_fd, c->rbuf + c->rlen, sizeof(c->rbuf) - 1 - c->rlen,
				 MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			return -errno;
		if (n == 0) {
			c->qmp_eof = true; /* QEMU is exiting */
			return -ESRCH;
		}
		c->rlen += (size_t)n;
		qmp_process(c, want);
	}
}

/* Wait until *flag (set by a reply or an event) or the deadline. */
static int qmp_wait(QemuCell *c, QmpReply *want, const bool *flag, uint64_t deadline)
{
	int r = qmp_drain(c, want);

	while (r >= 0 && !*flag) {
		int ms = remaining_ms(deadline);
		if (ms == 0)
			return -ETIMEDOUT;
		struct pollfd p = { .fd = c->qmp_fd, .events = POLLIN };
		if (poll(&p, 1, ms) < 0 && errno != EINTR)
			return -errno;
		r = qmp_drain(c, want);
	}
	return *flag ? 0 : r;
}

static int qmp_send(QemuCell *c, const char *json, uint64_t deadline)
{
	size_t len = strlen(json), off = 0;

	while (off < len) {
		ssize_t n = send(c->qmp_fd, json + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = { .fd = c->qmp_fd, .events = POLLOUT };
			int ms = remaining_ms(deadline);
			if (ms == 0 || poll(&p, 1, ms) == 0)
				return -ETIMEDOUT;
			continue;
		}
		if (n < 0)
			return errno == EPIPE || errno == ECONNRESET ? -ESRCH : -errno;
		off += (size_t)n;
	}
	return 0;
}

/* Run one command and wait for its answer. Events that arrive meanwhile
 * update the state as they would in event_ack. */
static int qmp_exec(QemuCell *c, const char *cmd, QmpReply *reply)
{
	QmpReply tmp;
	char buf[128];
	uint64_t deadline = now_ns(CLOCK_MONOTONIC) + QMP_TIMEOUT_MS * 1000000ull;
	int r;

	if (c->qmp_fd < 0 || c->qmp_eof)
		return -ESRCH;
	if (!reply)
		reply = &tmp;
	if (++c->next_id == 0)
		c->next_id = 1;
	*reply = (QmpReply){ .id = c->next_id };
	snprintf(buf, sizeof(buf), "{\"execute\": \"%s\", \"id\": %u}\n", cmd, reply->id);
	r = qmp_send(c, buf, deadline);
	if (r >= 0)
		r = qmp_wait(c, reply, &reply->found, deadline);
	if (r < 0)
		return r;
	return reply->error;
}

static int qmp_connect(QemuCell *c, uint64_t deadline)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	QmpReply greeting = { 0 };
	int fd, r;

	/* Through the directory fd, so the runtime path length never matters. */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", c->dir_fd, FILE_QMP);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(fd);
		return r == -ECONNREFUSED ? -ENOENT : r;
	}
	c->qmp_fd = fd;
	c->qmp_eof = false;
	c->rlen = 0;
	c->rskip = false;

	/* The greeting comes once QEMU accepts us: at once for a fresh QEMU
	 * (it inherited a listening socket), when the previous client is gone
	 * for an adopted one. Any first line will do. */
	for (;;) {
		int ms = remaining_ms(deadline);
		if (memchr(c->rbuf, '\n', c->rlen))
			break;
		if (ms == 0)
			return -ETIMEDOUT;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, ms) < 0 && errno != EINTR)
			return -errno;
		ssize_t n = recv(fd, c->rbuf + c->rlen, sizeof(c->rbuf) - 1 - c->rlen, MSG_DONTWAIT);
		if (n == 0)
			return -ESRCH;
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (n > 0)
			c->rlen += (size_t)n;
		if (c->rlen == sizeof(c->rbuf) - 1)
			return -EPROTO;
	}
	if (!memmem(c->rbuf, c->rlen, "\"QMP\"", 5))
		return -EPROTO;
	qmp_process(c, &greeting);

	/* QEMU answers qmp_capabilities only when it has finished setting the
	 * machine up (memory preallocated, images read): that is "ready". */
	QmpReply caps = { .id = ++c->next_id };
	char buf[96];
	snprintf(buf, sizeof(buf), "{\"execute\": \"qmp_capabilities\", \"id\": %u}\n", caps.id);
	r = qmp_send(c, buf, deadline);
	if (r >= 0)
		r = qmp_wait(c, &caps, &caps.found, deadline);
	if (r < 0)
		return r;
	return caps.error;
}

/* ---- files in the cell directory ----------------------------------- */

static int save_state(QemuCell *c)
{
	char buf[2 * PATH_MAX + 256];
	int len = 0, fd, r = 0;

	len = snprintf(buf, sizeof(buf), "boots %" PRIu64 "\n", c->boots);
	for (int i = 0; i < 2; i++) {
		const char *path = i ? c->initrd : c->kernel;
		const ImageId *id = i ? &c->initrd_id : &c->kernel_id;
		if (!path || !id->set)
			continue;
		len += snprintf(buf + len, sizeof(buf) - (size_t)len,
				"%s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %s\n",
				i ? "initrd" : "kernel", id->dev, id->ino, id->size, id->mtime_ns, path);
		if (len >= (int)sizeof(buf))
			return -ENAMETOOLONG;
	}
	fd = openat(c->dir_fd, FILE_STATE ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	ssize_t k = write(fd, buf, (size_t)len);
	if (k < 0)
		r = -errno;
	else if (k != len)
		r = -EIO;
	close(fd);
	if (r == 0 && renameat(c->dir_fd, FILE_STATE ".tmp", c->dir_fd, FILE_STATE) < 0)
		r = -errno;
	return r;
}

static void load_state(QemuCell *c)
{
	char line[PATH_MAX + 128], path[PATH_MAX];
	int fd = openat(c->dir_fd, FILE_STATE, O_RDONLY | O_CLOEXEC);
	FILE *f;

	if (fd < 0)
		return;
	f = fdopen(fd, "re");
	if (!f) {
		close(fd);
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		ImageId id = { .set = true };
		char what[8];
		if (sscanf(line, "boots %" SCNu64, &c->boots) == 1)
			continue;
		if (sscanf(line, "%7s %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %4095[^\n]", what,
			   &id.dev, &id.ino, &id.size, &id.mtime_ns, path) != 6)
			continue;
		char **dst = strcmp(what, "kernel") == 0 ? &c->kernel :
			     strcmp(what, "initrd") == 0 ? &c->initrd : NULL;
		if (!dst || *dst)
			continue;
		*dst = strdup(path);
		if (*dst)
			*(dst == &c->kernel ? &c->kernel_id : &c->initrd_id) = id;
	}
	fclose(f);
}

/* The pid of the process holding QEMU's lock on the pid file; -ENOENT if
 * nobody holds it (no live QEMU for this cell). */
static int pidfile_holder(int dir_fd, pid_t *ret)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd = openat(dir_fd, FILE_PID, O_RDONLY | O_CLOEXEC);
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

static int comm_map(QemuCell *c, size_t size, bool create)
{
	int fd, r = 0;
	void *p;

	fd = openat(c->dir_fd, FILE_COMM, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0600);
	if (fd < 0)
		return -errno;
	if (create && ftruncate(fd, (off_t)size) < 0) {
		r = -errno;
		goto out;
	}
	if (!create) {
		struct stat st;
		if (fstat(fd, &st) < 0) {
			r = -errno;
			goto out;
		}
		size = (size_t)st.st_size;
		if (size < WARDEN_COMM_SIZE) {
			r = -EPROTO;
			goto out;
		}
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		r = -errno;
		goto out;
	}
	c->comm = p;
	c->comm_size = size;
out:
	close(fd);
	return r;
}

/* Zero the inmate's half, as a power-on would: a stale PANICKED or HALTED
 * must never be read as the new boot's. The mailbox stays; the inmate
 * takes its cmd_seq as handled when it boots. */
static void comm_clear_inmate(QemuCell *c)
{
	volatile uint64_t *w = (volatile uint64_t *)c->comm;

	for (size_t i = 0; i < WARDEN_COMM_MAILBOX_OFFSET / sizeof(*w); i++)
		w[i] = 0;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* The newest log is kept for the next life as NAME.1. */
static void keep_previous(int dir_fd, const char *cur, const char *old)
{
	(void)renameat(dir_fd, cur, dir_fd, old);
}

/* QEMU appends (O_APPEND): the file can be cut without QEMU noticing. */
static void console_rotate(QemuCell *c)
{
	struct stat st;
	char buf[65536];
	int out;
	off_t off = 0;

	if (c->console_fd < 0 || fstat(c->console_fd, &st) < 0 || st.st_size < CONSOLE_ROTATE_BYTES)
		return;
	out = openat(c->dir_fd, FILE_CONSOLE_OLD, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		return;
	for (;;) {
		ssize_t n = pread(c->console_fd, buf, sizeof(buf), off);
		if (n <= 0 || write(out, buf, (size_t)n) != n)
			break;
		off += n;
	}
	close(out);
	/* What QEMU wrote between the copy and the cut is lost: a few bytes,
	 * once per MiB of console output. */
	int w = openat(c->dir_fd, FILE_CONSOLE, O_WRONLY | O_CLOEXEC);
	if (w >= 0) {
		(void)!ftruncate(w, 0);
		close(w);
	}
}

static void unlink_runtime_files(QemuCell *c)
{
	static const char *const files[] = { FILE_QMP, FILE_PID, FILE_COMM, FILE_STATE };

	/* The logs stay for a post-mortem; the next create keeps them as .1. */
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		(void)unlinkat(c->dir_fd, files[i], 0);
}

/* ---- backend ------------------------------------------------------- */

int qemu_backend_new(const BackendConfig *cfg, Backend **ret)
{
	const char *accel = cfg->accel ? cfg->accel : DEFAULT_ACCEL;
	const char *machine = cfg->machine ? cfg->machine : DEFAULT_MACHINE;
	QemuBackend *b;

	if (!cfg->runtime_dir || cfg->runtime_dir[0] != '/' || !cfg->runner_path ||
	    cfg->runner_path[0] != '/')
		return -EINVAL;
	if (strcmp(accel, "tcg") != 0 && strcmp(accel, "kvm") != 0)
		return -EINVAL;
	if (!option_value_valid(machine))
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->base.ops = &qemu_backend_ops;
	b->binary = strdup(cfg->runner_path);
	b->accel = strdup(accel);
	b->machine = strdup(machine);
	if (asprintf(&b->cells_dir, "%s/cells", cfg->runtime_dir) < 0)
		b->cells_dir = NULL;
	if (!b->binary || !b->accel || !b->machine || !b->cells_dir) {
		qemu_backend_ops.free(&b->base);
		return -ENOMEM;
	}
	*ret = &b->base;
	return 0;
}

static void qemu_backend_free(Backend *base)
{
	QemuBackend *b = (QemuBackend *)base;

	free(b->cells_dir);
	free(b->binary);
	free(b->accel);
	free(b->machine);
	free(b->firmware);
	free(b);
}

/* qboot, where QEMU installs its firmware: PREFIX/bin/qemu-system-x86_64
 * -> PREFIX/share/qemu/qboot.rom (Debian: qemu-system-data). SeaBIOS, the
 * default, answers a host reset of a machine it has booted with a chain of
 * hard reboots of its own (0.4-4 s measured, see README.md); qboot boots
 * the same kernel and restarts cleanly. */
static char *find_qboot(const char *binary)
{
	char *dir = strdup(binary), *path = NULL, *slash;

	if (!dir)
		return NULL;
	slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	if (asprintf(&path, "%s/../share/qemu/qboot.rom", dir) < 0)
		path = NULL;
	free(dir);
	if (!path)
		return NULL;
	char *real = realpath(path, NULL);
	free(path);
	if (real && access(real, R_OK) < 0) {
		free(real);
		real = NULL;
	}
	return real;
}

static int qemu_backend_enable(Backend *base)
{
	QemuBackend *b = (QemuBackend *)base;

	/* Missing or not executable: either way there is no QEMU to run. */
	if (access(b->binary, X_OK) < 0)
		return -ENOENT;
	if (strcmp(b->accel, "kvm") == 0 && access("/dev/kvm", R_OK | W_OK) < 0)
		return -errno;
	free(b->firmware);
	b->firmware = find_qboot(b->binary);
	return backend_mkdir_p(b->cells_dir);
}

static int qemu_backend_disable(Backend *base)
{
	/* Nothing global to undo: each cell is its own process. */
	(void)base;
	return 0;
}

/* ---- cell objects -------------------------------------------------- */

static QemuCell *cell_new(QemuBackend *b, const char *name)
{
	QemuCell *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->base.ops = &qemu_cell_ops;
	c->backend = b;
	c->dir_fd = c->qmp_fd = c->pidfd = c->console_fd = -1;
	c->state = BACKEND_CELL_CREATED;
	c->name = strdup(name);
	if (!c->name || asprintf(&c->dir, "%s/%s", b->cells_dir, name) < 0) {
		free(c->name);
		free(c);
		return NULL;
	}
	return c;
}

/* Notice that QEMU exited; reap it if it is our child and remember how. */
static void cell_reap(QemuCell *c, int timeout_ms)
{
	siginfo_t si = { 0 };

	if (c->exited || c->pidfd < 0 || !backend_fd_readable(c->pidfd, timeout_ms))
		return;
	c->exited = true;
	if (waitid((idtype_t)P_PIDFD, (id_t)c->pidfd, &si, WEXITED | WNOHANG) == 0 && si.si_pid) {
		if (si.si_code == CLD_EXITED)
			snprintf(c->exit_reason, sizeof(c->exit_reason),
				 "qemu exited with status %d", si.si_status);
		else
			snprintf(c->exit_reason, sizeof(c->exit_reason),
				 "qemu killed by signal %d", si.si_status);
	} else {
		/* Not our child (adopted after a daemon restart): no status. */
		snprintf(c->exit_reason, sizeof(c->exit_reason), "qemu exited");
	}
}

static void qemu_cell_free(BackendCell *base)
{
	QemuCell *c = (QemuCell *)base;

	cell_reap(c, 0);
	if (c->comm)
		munmap((void *)c->comm, c->comm_size);
	backend_close_fd(&c->qmp_fd);
	backend_close_fd(&c->pidfd);
	backend_close_fd(&c->console_fd);
	backend_close_fd(&c->dir_fd);
	free(c->kernel);
	free(c->initrd);
	free(c->name);
	free(c->dir);
	free(c);
}

/* Guest RAM: every memory region but the comm region, in MiB. */
static uint64_t ram_mib(const BackendCellConfig *cfg)
{
	uint64_t bytes = 0;

	for (size_t i = 0; i < cfg->n_regions; i++) {
		const BackendRegion *m = &cfg->regions[i];
		if (m->virt_start == cfg->comm_addr && m->size == cfg->comm_size &&
		    (m->flags & BACKEND_MEM_SHARED))
			continue;
		bytes += m->size;
	}
	return (bytes + (1ull << 20) - 1) >> 20;
}

static int build_argv(QemuBackend *b, const QemuCell *c, const BackendCellConfig *cfg,
		      int qmp_fd, char **argv)
{
	bool kvm = strcmp(b->accel, "kvm") == 0;
	size_t n = 0;
	int r = 0;

	r |= backend_append_arg(argv, &n, MAX_ARGS, "%s", b->binary);
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-name");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "guest=%s,debug-threads=on", c->name);
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-M");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "%s", b->machine);
	if (b->firmware) {
		r |= backend_append_arg(argv, &n, MAX_ARGS, "-bios");
		r |= backend_append_arg(argv, &n, MAX_ARGS, "%s", b->firmware);
	}
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-accel");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "%s", b->accel);
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-cpu");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "%s", kvm ? "host" : "max");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-smp");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "%zu", cfg->n_cpus);
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-m");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "%" PRIu64 "M", ram_mib(cfg));
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-mem-prealloc");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-nodefaults");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-no-user-config");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-nographic");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-display");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "none");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-vga");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "none");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-net");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "none");
	/* Up but not running until start; a guest power-off pauses rather
	 * than exits (the daemon sees "halted", not a dead process). No
	 * -no-reboot: it turns QMP system_reset into a shutdown. */
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-S");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-no-shutdown");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-pidfile");
	r |= backend_append_arg(argv, &n, MAX_ARGS, FILE_PID);
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-object");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "memory-backend-file,id=warden-comm,share=on,mem-path=" FILE_COMM
			",size=%zu", (size_t)cfg->comm_size);
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-device");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "ivshmem-plain,memdev=warden-comm");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-device");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "pvpanic");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-chardev");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "file,id=warden-console,path=" FILE_CONSOLE ",append=on");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-serial");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "chardev:warden-console");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-chardev");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "socket,id=warden-qmp,fd=%d,server=on,wait=off", qmp_fd);
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-mon");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "chardev=warden-qmp,mode=control");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-kernel");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "%s", cfg->kernel);
	if (cfg->initrd) {
		r |= backend_append_arg(argv, &n, MAX_ARGS, "-initrd");
		r |= backend_append_arg(argv, &n, MAX_ARGS, "%s", cfg->initrd);
	}
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-append");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "%s%swarden.period_ms=%u warden.allow_inject=%d",
			cfg->cmdline ? cfg->cmdline : "", cfg->cmdline && *cfg->cmdline ? " " : "",
			cfg->period_ms ? cfg->period_ms : 100, cfg->allow_inject ? 1 : 0);
	argv[n] = NULL;
	return r ? -ENOMEM : 0;
}

static bool power_of_two(uint64_t x)
{
	return x && !(x & (x - 1));
}

static int validate_config(const BackendCellConfig *cfg)
{
	if (!backend_name_valid(cfg->name))
		return -EINVAL;
	if (cfg->n_cpus == 0 || cfg->n_cpus > BACKEND_MAX_CPUS || !cfg->cpus)
		return -EINVAL;
	for (size_t i = 0; i < cfg->n_cpus; i++)
		if (cfg->cpus[i] >= CPU_SETSIZE)
			return -EINVAL;
	if (cfg->n_regions > BACKEND_MAX_REGIONS || ram_mib(cfg) == 0)
		return -EINVAL;
	/* ivshmem wants a power-of-two BAR. */
	if (cfg->comm_size < WARDEN_COMM_SIZE || !power_of_two(cfg->comm_size) ||
	    cfg->comm_size > (1ull << 30))
		return -EINVAL;
	/* This board boots Linux kernels only; flat images are kvm's. */
	if (!cfg->kernel || cfg->kernel[0] != '/' || cfg->n_images > 0)
		return -EINVAL;
	if (cfg->initrd && cfg->initrd[0] != '/')
		return -EINVAL;
	if (cfg->cmdline && strlen(cfg->cmdline) > CMDLINE_MAX - 64)
		return -EINVAL;
	if (access(cfg->kernel, R_OK) < 0 || (cfg->initrd && access(cfg->initrd, R_OK) < 0))
		return -errno;
	return 0;
}

/* In the child between fork and exec: async-signal-safe calls only. */
static __attribute__((noreturn)) void child_exec(const char *binary, char **argv,
						 const cpu_set_t *cpus, int dir_fd,
						 int null_fd, int log_fd, int qmp_fd, int err_fd)
{
	extern char **environ;
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;
	int fds[5] = { null_fd, log_fd, qmp_fd, err_fd, dir_fd };
	int efd = err_fd, e;

	/* QEMU outlives the daemon: its own session, no controlling tty. */
	if (setsid() < 0)
		goto fail;
	/* The daemon blocks signals for sd-event; QEMU needs the defaults. */
	for (int s = 1; s < NSIG; s++)
		(void)sigaction(s, &dfl, NULL);
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
		goto fail;
	/* Every QEMU thread (vCPUs, main loop, workers) inherits this. */
	if (sched_setaffinity(0, sizeof(*cpus), cpus) < 0)
		goto fail;
	/* Lift everything clear of 0..4 before placing it there. */
	for (int i = 0; i < 5; i++) {
		fds[i] = fcntl(fds[i], F_DUPFD, 16);
		if (fds[i] < 0)
			goto fail;
	}
	if (fchdir(fds[4]) < 0 || dup2(fds[0], 0) < 0 || dup2(fds[1], 1) < 0 ||
	    dup2(fds[1], 2) < 0 || dup2(fds[2], 3) < 0 || dup3(fds[3], 4, O_CLOEXEC) < 0)
		goto fail;
	efd = 4;
	if (close_range(5, ~0u, 0) < 0)
		for (int fd = 5; fd < 65536; fd++)
			(void)close(fd);
	execve(binary, argv, environ);
fail:
	e = errno;
	(void)!write(efd, &e, sizeof(e));
	_exit(127);
}

static int spawn_qemu(QemuBackend *b, QemuCell *c, const BackendCellConfig *cfg)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *argv[MAX_ARGS] = { 0 };
	int listen_fd = -1, null_fd = -1, log_fd = -1, pipefd[2] = { -1, -1 };
	cpu_set_t cpus;
	pid_t pid;
	int r, e = 0;

	CPU_ZERO(&cpus);
	for (size_t i = 0; i < cfg->n_cpus; i++)
		CPU_SET(cfg->cpus[i], &cpus);

	/* The QMP socket is bound and listening before QEMU runs: we connect
	 * at once, and QEMU takes the connection when it is ready. */
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listen_fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", c->dir_fd, FILE_QMP);
	(void)unlinkat(c->dir_fd, FILE_QMP, 0);
	if (bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(listen_fd, 4) < 0) {
		r = -errno;
		goto out;
	}
	r = build_argv(b, c, cfg, 3, argv);
	if (r < 0)
		goto out;
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	log_fd = openat(c->dir_fd, FILE_LOG, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	if (null_fd < 0 || log_fd < 0 || pipe2(pipefd, O_CLOEXEC) < 0) {
		r = -errno;
		goto out;
	}

	pid = fork();
	if (pid < 0) {
		r = -errno;
		goto out;
	}
	if (pid == 0)
		child_exec(b->binary, argv, &cpus, c->dir_fd, null_fd, log_fd, listen_fd, pipefd[1]);
	backend_close_fd(&pipefd[1]);
	c->pid = pid;

	/* The child is ours and unreaped, so its pid cannot be recycled yet. */
	r = backend_pidfd_open(pid);
	if (r < 0) {
		kill(pid, SIGKILL);
		(void)waitpid(pid, NULL, 0);
		c->exited = true;
		goto out;
	}
	c->pidfd = r;
	r = 0;

	/* EOF on the pipe: exec succeeded. An errno: it did not. */
	if (backend_fd_readable(pipefd[0], QMP_TIMEOUT_MS)) {
		ssize_t n = read(pipefd[0], &e, sizeof(e));
		if (n == (ssize_t)sizeof(e))
			r = e > 0 ? -e : -ECHILD;
	} else {
		r = -ETIMEDOUT;
	}
out:
	backend_close_fd(&pipefd[0]);
	backend_close_fd(&pipefd[1]);
	backend_close_fd(&listen_fd);
	backend_close_fd(&null_fd);
	backend_close_fd(&log_fd);
	for (size_t i = 0; argv[i]; i++)
		free(argv[i]);
	return r;
}

/* Bounded: QUIT_TIMEOUT_MS after a quit, then SIGKILL. */
static int cell_kill(QemuCell *c, bool polite)
{
	if (c->exited || c->pidfd < 0)
		return 0;
	if (polite && c->qmp_fd >= 0 && !c->qmp_eof) {
		QmpReply rep = { 0 };
		(void)qmp_exec(c, "quit", &rep);
		cell_reap(c, QUIT_TIMEOUT_MS);
	}
	if (!c->exited) {
		(void)syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, NULL, 0);
		cell_reap(c, KILL_TIMEOUT_MS);
	}
	return c->exited ? 0 : -ETIMEDOUT;
}

static int open_cell_dir(QemuCell *c, bool create)
{
	if (create) {
		int r = backend_mkdir_p(c->dir);
		if (r < 0)
			return r;
	}
	c->dir_fd = open(c->dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (c->dir_fd < 0)
		return -errno;
	return 0;
}

static int open_console(QemuCell *c)
{
	c->console_fd = openat(c->dir_fd, FILE_CONSOLE, O_RDONLY | O_CLOEXEC);
	return c->console_fd < 0 ? -errno : 0;
}

static int qemu_cell_create(Backend *base, const BackendCellConfig *cfg, BackendCell **ret)
{
	QemuBackend *b = (QemuBackend *)base;
	uint64_t deadline;
	QemuCell *c;
	pid_t holder;
	int fd, r;

	r = validate_config(cfg);
	if (r < 0)
		return r;
	c = cell_new(b, cfg->name);
	if (!c)
		return -ENOMEM;
	r = open_cell_dir(c, true);
	if (r < 0)
		goto fail;
	/* A live QEMU holds the pid file lock: its comm file is not ours to
	 * truncate. */
	if (pidfile_holder(c->dir_fd, &holder) == 0) {
		r = -EEXIST;
		goto fail;
	}
	keep_previous(c->dir_fd, FILE_CONSOLE, FILE_CONSOLE_OLD);
	keep_previous(c->dir_fd, FILE_LOG, FILE_LOG_OLD);
	fd = openat(c->dir_fd, FILE_CONSOLE, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	close(fd);
	r = open_console(c);
	if (r < 0)
		goto fail;
	r = comm_map(c, (size_t)cfg->comm_size, true);
	if (r < 0)
		goto fail;

	c->kernel = strdup(cfg->kernel);
	c->initrd = cfg->initrd ? strdup(cfg->initrd) : NULL;
	if (!c->kernel || (cfg->initrd && !c->initrd)) {
		r = -ENOMEM;
		goto fail;
	}
	/* Taken before QEMU reads them, so a change in between shows. */
	r = image_id(c->kernel, &c->kernel_id);
	if (r >= 0 && c->initrd)
		r = image_id(c->initrd, &c->initrd_id);
	if (r < 0)
		goto fail;

	r = spawn_qemu(b, c, cfg);
	if (r < 0)
		goto fail_kill;
	deadline = now_ns(CLOCK_MONOTONIC) +
		   (STARTUP_BASE_MS + STARTUP_PER_MIB_MS * ram_mib(cfg)) * 1000000ull;
	r = qmp_connect(c, deadline);
	if (r < 0) {
		/* Died on a bad option or image (qemu.log says which), or hung. */
		cell_reap(c, 0);
		if (c->exited || r == -ESRCH)
			r = -ECHILD;
		goto fail_kill;
	}
	c->fresh = true;
	set_state(c, BACKEND_CELL_CREATED, "created", 0);
	(void)save_state(c);
	*ret = &c->base;
	return 0;

fail_kill:
	(void)cell_kill(c, false);
	unlink_runtime_files(c);
fail:
	qemu_cell_free(&c->base);
	return r;
}

static BackendCellState state_from_status(const char *s, const char **reason)
{
	*reason = "";
	if (strcmp(s, "running") == 0)
		return BACKEND_CELL_RUNNING;
	if (strcmp(s, "prelaunch") == 0)
		return BACKEND_CELL_CREATED;
	if (strcmp(s, "guest-panicked") == 0) {
		*reason = "guest panicked";
		return BACKEND_CELL_FAILED;
	}
	if (strcmp(s, "shutdown") == 0) {
		*reason = "guest powered off";
		return BACKEND_CELL_HALTED;
	}
	if (strcmp(s, "internal-error") == 0) {
		*reason = "qemu internal error";
		return BACKEND_CELL_FAILED;
	}
	*reason = strcmp(s, "paused") == 0 ? "paused" : s;
	return BACKEND_CELL_STOPPED;
}

static int qemu_cell_adopt(Backend *base, const char *name, BackendCell **ret)
{
	QemuBackend *b = (QemuBackend *)base;
	QmpReply st = { 0 };
	BackendCellState state;
	const char *why;
	pid_t pid, again;
	QemuCell *c;
	int r;

	if (!backend_name_valid(name))
		return -EINVAL;
	c = cell_new(b, name);
	if (!c)
		return -ENOMEM;
	r = open_cell_dir(c, false);
	if (r < 0)
		goto fail;
	/* The lock names the live QEMU; a pid file alone could be stale. */
	r = pidfile_holder(c->dir_fd, &pid);
	if (r < 0)
		goto fail;
	r = backend_pidfd_open(pid);
	if (r < 0) {
		r = r == -ESRCH ? -ENOENT : r;
		goto fail;
	}
	c->pidfd = r;
	c->pid = pid;
	if (pidfile_holder(c->dir_fd, &again) < 0 || again != pid) {
		r = -ENOENT; /* exited meanwhile, the pid may be someone else's */
		goto fail;
	}
	r = qmp_connect(c, now_ns(CLOCK_MONOTONIC) + QMP_TIMEOUT_MS * 1000000ull);
	if (r == -ESRCH)
		r = -ENOENT;
	if (r < 0)
		goto fail;
	r = qmp_exec(c, "query-status", &st);
	if (r < 0)
		goto fail;
	r = comm_map(c, 0, false);
	if (r < 0)
		goto fail;
	(void)open_console(c);
	load_state(c);
	/* Not set_state(c, state_from_status(..., &why), why, 0): C leaves the
	 * order of argument evaluation open, so why could be read unset. */
	state = state_from_status(st.status, &why);
	set_state(c, state, why, 0);
	c->loaded = true;
	c->fresh = c->state == BACKEND_CELL_CREATED;
	*ret = &c->base;
	return 0;
fail:
	qemu_cell_free(&c->base);
	return r;
}

/* ---- cell operations ----------------------------------------------- */

static int cell_usable(QemuCell *c)
{
	if (c->destroyed)
		return -ENODEV;
	cell_reap(c, 0);
	if (c->exited || c->qmp_eof)
		return -ESRCH;
	return 0;
}

static int exec_or_gone(QemuCell *c, const char *cmd, QmpReply *rep)
{
	int r = qmp_exec(c, cmd, rep);

	if (r == -ESRCH || r == -ECONNRESET || r == -EPIPE) {
		cell_reap(c, 100);
		return -ESRCH;
	}
	return r;
}

/* Back to power-on: paused, comm cleared, machine reset (firmware and
 * kernel start over; QEMU re-reads nothing, it kept the images). */
static int machine_rewind(QemuCell *c)
{
	uint64_t deadline;
	int r;

	r = exec_or_gone(c, "stop", NULL);
	if (r < 0)
		return r;
	/* Paused: nothing in the guest writes the comm region now. */
	comm_clear_inmate(c);
	c->saw_reset = false;
	r = exec_or_gone(c, "system_reset", NULL);
	if (r < 0)
		return r;
	/* QMP answers before the main loop resets the machine; the RESET
	 * event says it is done, and a "cont" before it could race. */
	deadline = now_ns(CLOCK_MONOTONIC) + QMP_TIMEOUT_MS * 1000000ull;
	r = qmp_wait(c, NULL, &c->saw_reset, deadline);
	if (r == -ESRCH)
		cell_reap(c, 100);
	if (r < 0)
		return r;
	c->fresh = true;
	return 0;
}

static int machine_run(QemuCell *c)
{
	int r = exec_or_gone(c, "cont", NULL);

	if (r < 0)
		return r;
	c->fresh = false;
	c->boots++;
	set_state(c, BACKEND_CELL_RUNNING, "", 0);
	(void)save_state(c);
	return 0;
}

static int images_current(QemuCell *c)
{
	/* QEMU read kernel and initrd when it started; a new file at the same
	 * path needs a new QEMU. The daemon answers a failed reset with
	 * destroy + create, which is exactly that. */
	if (image_changed(c->kernel, &c->kernel_id) || image_changed(c->initrd, &c->initrd_id))
		return -ESTALE;
	return 0;
}

static int qemu_cell_load(BackendCell *base)
{
	QemuCell *c = (QemuCell *)base;
	int r = cell_usable(c);

	if (r < 0)
		return r;
	r = images_current(c);
	if (r < 0)
		return r;
	if (c->fresh)
		comm_clear_inmate(c);
	else if ((r = machine_rewind(c)) < 0)
		return r;
	console_rotate(c);
	c->loaded = true;
	set_state(c, BACKEND_CELL_CREATED, "loaded", 0);
	return 0;
}

static int qemu_cell_start(BackendCell *base)
{
	QemuCell *c = (QemuCell *)base;
	int r = cell_usable(c);

	if (r < 0)
		return r;
	if (c->state == BACKEND_CELL_RUNNING)
		return -EALREADY;
	if (!c->loaded)
		return -ENOEXEC;
	/* A start is a boot, never a resume of what was stopped. */
	if (!c->fresh && (r = machine_rewind(c)) < 0)
		return r;
	return machine_run(c);
}

static int qemu_cell_stop(BackendCell *base)
{
	QemuCell *c = (QemuCell *)base;
	int r = cell_usable(c);

	if (r < 0)
		return r;
	r = exec_or_gone(c, "stop", NULL);
	if (r < 0)
		return r;
	/* Running becomes stopped; halted, failed and the rest stay what
	 * they are, memory and console intact. */
	if (c->state == BACKEND_CELL_RUNNING || c->state == BACKEND_CELL_STOPPED)
		set_state(c, BACKEND_CELL_STOPPED, "stopped on request", 0);
	return 0;
}

static int qemu_cell_reset(BackendCell *base)
{
	QemuCell *c = (QemuCell *)base;
	int r = cell_usable(c);

	if (r < 0)
		return r;
	r = images_current(c);
	if (r < 0)
		return r;
	r = machine_rewind(c);
	if (r < 0)
		return r;
	console_rotate(c);
	c->loaded = true;
	return machine_run(c);
}

static int qemu_cell_mail(BackendCell *base, uint32_t cmd, uint32_t arg)
{
	QemuCell *c = (QemuCell *)base;

	if (c->destroyed)
		return -ENODEV;
	/* ivshmem-plain has no doorbell: the inmate reads its mailbox on
	 * every beat. */
	return backend_comm_post(c->comm, cmd, arg);
}

static int qemu_cell_shutdown(BackendCell *base)
{
	return qemu_cell_mail(base, WARDEN_CMD_SHUTDOWN, 0);
}

static int qemu_cell_destroy(BackendCell *base)
{
	QemuCell *c = (QemuCell *)base;
	int r;

	if (c->destroyed)
		return 0;
	cell_reap(c, 0);
	r = cell_kill(c, true);
	if (r < 0)
		return r;
	backend_close_fd(&c->qmp_fd);
	unlink_runtime_files(c);
	c->destroyed = true;
	set_state(c, BACKEND_CELL_GONE, "destroyed", 0);
	return 0;
}

static const char *qemu_cell_name(const BackendCell *base)
{
	return ((const QemuCell *)base)->name;
}

static int qemu_cell_status(BackendCell *base, BackendCellStatus *ret)
{
	QemuCell *c = (QemuCell *)base;
	BackendCellStatus s = { 0 };

	/* Cheap: a non-blocking read of whatever QEMU said meanwhile. */
	if (!c->destroyed)
		(void)qmp_drain(c, NULL);
	cell_reap(c, 0);
	console_rotate(c);
	s.state = c->state;
	snprintf(s.reason, sizeof(s.reason), "%s", c->reason);
	s.state_mono_ns = c->state_mono_ns;
	if (c->exited && s.state != BACKEND_CELL_GONE) {
		s.state = BACKEND_CELL_GONE;
		snprintf(s.reason, sizeof(s.reason), "%s", c->exit_reason);
		s.state_mono_ns = 0;
	}
	s.boots = c->boots;
	s.pid = c->pid;
	/* No exit counters: TCG has no exits to count, and QEMU's KVM ones
	 * are not on QMP. They stay 0. */
	*ret = s;
	return 0;
}

static volatile struct warden_comm *qemu_cell_comm(BackendCell *base)
{
	return ((QemuCell *)base)->comm;
}

/* The newest n bytes: the tail of console.log, preceded by the tail of
 * console.log.1 when the current file is shorter than asked for. */
static ssize_t qemu_cell_console_read(BackendCell *base, char *buf, size_t n)
{
	QemuCell *c = (QemuCell *)base;
	struct stat st;
	size_t cur, old_part = 0;
	ssize_t k;

	if (c->console_fd < 0 || fstat(c->console_fd, &st) < 0)
		return c->console_fd < 0 ? 0 : -errno;
	cur = (size_t)st.st_size;
	if (cur < n) {
		int fd = openat(c->dir_fd, FILE_CONSOLE_OLD, O_RDONLY | O_CLOEXEC);
		struct stat ost;
		if (fd >= 0 && fstat(fd, &ost) == 0) {
			size_t want = n - cur, have = (size_t)ost.st_size;
			size_t take = want < have ? want : have;
			k = pread(fd, buf, take, (off_t)(have - take));
			old_part = k > 0 ? (size_t)k : 0;
		}
		if (fd >= 0)
			close(fd);
	}
	size_t take = cur < n - old_part ? cur : n - old_part;
	k = pread(c->console_fd, buf + old_part, take, (off_t)(cur - take));
	if (k < 0)
		return -errno;
	return (ssize_t)old_part + k;
}

static int qemu_cell_event_fd(BackendCell *base)
{
	QemuCell *c = (QemuCell *)base;
	return c->qmp_fd >= 0 ? c->qmp_fd : -EBADF;
}

static int qemu_cell_event_ack(BackendCell *base)
{
	QemuCell *c = (QemuCell *)base;
	int r;

	if (c->destroyed)
		return 0;
	/* At EOF the socket stays readable: -ESRCH tells the caller to stop
	 * watching it (a loop call never waits); the pidfd says the rest. */
	r = qmp_drain(c, NULL);
	if (r == -ESRCH)
		cell_reap(c, 0);
	return r;
}

static void qemu_cell_reap(BackendCell *base)
{
	cell_reap((QemuCell *)base, 0);
}

static int qemu_cell_pidfd(BackendCell *base)
{
	return ((QemuCell *)base)->pidfd;
}

static const BackendOps qemu_backend_ops = {
	.kind = "qemu",
	/* A new QEMU boots sooner than system_reset in place (2.02 s against
	 * 2.24 s median, tests/bench/bench_linux.py): reset copies the
	 * kernel's ROM blobs back and restarts the firmware. */
	.restart_in_place = false,
	.free = qemu_backend_free,
	.enable = qemu_backend_enable,
	.disable = qemu_backend_disable,
	.cell_create = qemu_cell_create,
	.cell_adopt = qemu_cell_adopt,
};

static const BackendCellOps qemu_cell_ops = {
	.free = qemu_cell_free,
	.load = qemu_cell_load,
	.start = qemu_cell_start,
	.stop = qemu_cell_stop,
	.reset = qemu_cell_reset,
	.shutdown = qemu_cell_shutdown,
	.mail = qemu_cell_mail,
	.destroy = qemu_cell_destroy,
	.name = qemu_cell_name,
	.status = qemu_cell_status,
	.comm = qemu_cell_comm,
	.console_read = qemu_cell_console_read,
	.event_fd = qemu_cell_event_fd,
	.event_ack = qemu_cell_event_ack,
	.pidfd = qemu_cell_pidfd,
	.reap = qemu_cell_reap,
};
