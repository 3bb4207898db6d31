/* SPDX-License-Identifier: MIT */
/*
 * QMP over the cell's socket: a line buffer, jansson for each line, and
 * the one reply we wait for told apart from QEMU's events and from late
 * answers to commands we gave up on. Never logs; returns negative errno.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../backend-internal.h"
#include "qmp.h"

struct Qmp {
	int fd;
	bool eof;
	QmpEventFn on_event;
	void *userdata;

	/* Input not dispatched yet. A line that does not fit is dropped
	 * (skip) rather than misparsed. */
	char buf[QMP_LINE_MAX + 1];
	size_t len;
	bool skip;

	bool got_line; /* any line, for the handshake */
	bool greeted;  /* ... and the first one was the greeting */

	uint64_t next_id;
	uint64_t want_id; /* the answer qmp_exec() waits for, 0 for none */
	bool replied;
	QmpMessage reply;
};

/* ---- one line ------------------------------------------------------- */

static void copy_string(json_t *v, char *out, size_t n)
{
	const char *s = json_string_value(v);

	snprintf(out, n, "%s", s ? s : "");
}

static bool get_u64(json_t *v, uint64_t *ret)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*ret = (uint64_t)json_integer_value(v);
	return true;
}

static void parse_event(json_t *root, QmpMessage *m)
{
	json_t *data = json_object_get(root, "data");
	json_t *ts = json_object_get(root, "timestamp");
	uint64_t sec, usec;

	m->kind = QMP_EVENT;
	copy_string(json_object_get(root, "event"), m->event, sizeof(m->event));
	if (json_is_object(data)) {
		m->guest = json_is_true(json_object_get(data, "guest"));
		copy_string(json_object_get(data, "reason"), m->reason, sizeof(m->reason));
	}
	if (json_is_object(ts) && get_u64(json_object_get(ts, "seconds"), &sec) &&
	    get_u64(json_object_get(ts, "microseconds"), &usec))
		m->timestamp_ns = sec * 1000000000ull + usec * 1000ull;
}

int qmp_parse_line(const char *line, size_t len, QmpMessage *ret)
{
	QmpMessage m = { 0 };
	json_t *root, *v;
	int r = 0;

	root = json_loadb(line, len, 0, NULL);
	if (!json_is_object(root)) {
		json_decref(root);
		return -EBADMSG;
	}
	m.has_id = get_u64(json_object_get(root, "id"), &m.id);
	if (json_object_get(root, "event")) {
		parse_event(root, &m);
	} else if (json_object_get(root, "QMP")) {
		m.kind = QMP_GREETING;
	} else if ((v = json_object_get(root, "error"))) {
		m.kind = QMP_ERROR;
		copy_string(json_object_get(v, "desc"), m.desc, sizeof(m.desc));
	} else if ((v = json_object_get(root, "return"))) {
		m.kind = QMP_RETURN;
		copy_string(json_object_get(v, "status"), m.status, sizeof(m.status));
	} else {
		r = -EBADMSG;
	}
	json_decref(root);
	if (r == 0)
		*ret = m;
	return r;
}

/* QEMU stamps events with the host's wall clock: turned into our
 * CLOCK_MONOTONIC, a panic is dated when QEMU saw it, not when the daemon
 * got round to reading the socket. */
uint64_t qmp_event_mono_ns(const QmpMessage *event)
{
	uint64_t mono = backend_now_ns(CLOCK_MONOTONIC), real = backend_now_ns(CLOCK_REALTIME);
	uint64_t ev = event->timestamp_ns;

	if (!ev || ev >= real || real - ev > mono)
		return mono;
	return mono - (real - ev);
}

/* ---- the connection ------------------------------------------------- */

int qmp_new(int fd, QmpEventFn on_event, void *userdata, Qmp **ret)
{
	Qmp *q = calloc(1, sizeof(*q));

	if (!q)
		return -ENOMEM;
	q->fd = fd;
	q->on_event = on_event;
	q->userdata = userdata;
	*ret = q;
	return 0;
}

Qmp *qmp_free(Qmp *q)
{
	if (q) {
		backend_close_fd(&q->fd);
		free(q);
	}
	return NULL;
}

int qmp_fd(const Qmp *q)
{
	return q ? q->fd : -EBADF;
}

bool qmp_usable(const Qmp *q)
{
	return q && q->fd >= 0 && !q->eof;
}

static void dispatch(Qmp *q, const char *line, size_t len)
{
	bool first = !q->got_line;
	QmpMessage m;

	q->got_line = true;
	if (qmp_parse_line(line, len, &m) < 0)
		return;
	switch (m.kind) {
	case QMP_EVENT:
		if (q->on_event)
			q->on_event(&m, q->userdata);
		break;
	case QMP_GREETING:
		q->greeted = q->greeted || first;
		break;
	case QMP_RETURN:
	case QMP_ERROR:
		/* Anything else is a late answer to a command we gave up on. */
		if (q->want_id && m.has_id && m.id == q->want_id) {
			q->reply = m;
			q->replied = true;
		}
		break;
	default:
		break;
	}
}

/* Dispatch every complete line in the buffer. */
static void process(Qmp *q)
{
	char *start = q->buf, *end = q->buf + q->len, *nl;

	while ((nl = memchr(start, '\n', (size_t)(end - start)))) {
		if (q->skip)
			q->skip = false;
		else
			dispatch(q, start, (size_t)(nl - start));
		start = nl + 1;
	}
	q->len = (size_t)(end - start);
	memmove(q->buf, start, q->len);
	if (q->len == QMP_LINE_MAX) {
		/* Full without a newline: drop it up to the next one. */
		q->len = 0;
		q->skip = true;
		q->got_line = true;
	}
}

int qmp_drain(Qmp *q)
{
	if (!qmp_usable(q))
		return -ESRCH;
	for (;;) {
		ssize_t n = recv(q->fd, q->buf + q->len, QMP_LINE_MAX - q->len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			return -errno;
		if (n == 0) {
			q->eof = true; /* QEMU is exiting */
			return -ESRCH;
		}
		q->len += (size_t)n;
		process(q);
	}
}

int qmp_wait(Qmp *q, const bool *flag, uint64_t deadline_ns)
{
	int r = qmp_drain(q);

	while (r >= 0 && !*flag) {
		int ms = backend_remaining_ms(deadline_ns);
		if (ms == 0)
			return -ETIMEDOUT;
		struct pollfd p = { .fd = q->fd, .events = POLLIN };
		if (poll(&p, 1, ms) < 0 && errno != EINTR)
			return -errno;
		r = qmp_drain(q);
	}
	return *flag ? 0 : r;
}

static int send_all(Qmp *q, const char *s, size_t len, uint64_t deadline_ns)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = send(q->fd, s + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = { .fd = q->fd, .events = POLLOUT };
			int ms = backend_remaining_ms(deadline_ns);
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

static int exec_until(Qmp *q, const char *command, uint64_t deadline_ns, QmpMessage *ret)
{
	json_t *cmd;
	char *text, *line;
	size_t len;
	int r;

	if (!qmp_usable(q))
		return -ESRCH;
	if (++q->next_id == 0)
		q->next_id = 1;
	cmd = json_pack("{s:s, s:I}", "execute", command, "id", (json_int_t)q->next_id);
	text = cmd ? json_dumps(cmd, JSON_COMPACT) : NULL;
	json_decref(cmd);
	len = text ? strlen(text) : 0;
	line = text ? realloc(text, len + 2) : NULL;
	if (!line) {
		free(text);
		return -ENOMEM;
	}
	line[len++] = '\n';
	line[len] = 0;
	q->want_id = q->next_id;
	q->replied = false;
	r = send_all(q, line, len, deadline_ns);
	free(line);
	if (r >= 0)
		r = qmp_wait(q, &q->replied, deadline_ns);
	q->want_id = 0;
	if (r < 0)
		return r;
	if (ret)
		*ret = q->reply;
	return q->reply.kind == QMP_ERROR ? -EIO : 0;
}

int qmp_exec(Qmp *q, const char *command, int timeout_ms, QmpMessage *ret)
{
	return exec_until(q, command, backend_now_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * 1000000ull, ret);
}

int qmp_handshake(Qmp *q, uint64_t deadline_ns)
{
	int r;

	/* The greeting comes once QEMU accepts us: at once for a fresh QEMU
	 * (it inherited a listening socket), when the previous client is
	 * gone for an adopted one. */
	r = qmp_wait(q, &q->got_line, deadline_ns);
	if (r < 0)
		return r;
	if (!q->greeted)
		return -EPROTO;
	/* QEMU answers qmp_capabilities only when it has finished setting
	 * the machine up (memory preallocated, images read): that is ready. */
	return exec_until(q, "qmp_capabilities", deadline_ns, NULL);
}
