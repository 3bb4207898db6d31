/* SPDX-License-Identifier: MIT */
/*
 * A QMP client for one QEMU: the handshake, commands with a bounded wait
 * for their answer, and QEMU's events handed to a callback as they are
 * read. QMP speaks one JSON object per line; a line is parsed on its own
 * (qmp_parse_line) and reduced to the few members the qemu backend uses,
 * so nothing outside this module sees JSON. Only hypervisor/qemu/ includes
 * this.
 *
 * qmp_drain() never blocks (a loop call may run it); qmp_handshake(),
 * qmp_exec() and qmp_wait() wait, each up to a deadline.
 */
#ifndef WARDEN_QEMU_QMP_H
#define WARDEN_QEMU_QMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A line longer than this (the newline included) is dropped unparsed. */
#define QMP_LINE_MAX 16383

typedef enum QmpKind {
	QMP_GREETING, /* {"QMP": {...}} */
	QMP_RETURN,   /* {"return": ..., "id": N} */
	QMP_ERROR,    /* {"error": {"class": ..., "desc": ...}, "id": N} */
	QMP_EVENT,    /* {"event": NAME, "data": {...}, "timestamp": {...}} */
	_QMP_KIND_MAX,
} QmpKind;

typedef struct QmpMessage {
	QmpKind kind;
	bool has_id;
	uint64_t id;
	char status[32];  /* RETURN: return.status (query-status), or "" */
	char desc[128];   /* ERROR: error.desc, or "" */
	char event[32];   /* EVENT: its name, or "" when not a string */
	bool guest;       /* EVENT: data.guest is true */
	char reason[32];  /* EVENT: data.reason, or "" */
	uint64_t timestamp_ns; /* EVENT: QEMU's wall clock stamp, 0 if none */
} QmpMessage;

typedef struct Qmp Qmp;
typedef void (*QmpEventFn)(const QmpMessage *event, void *userdata);

/* One line without its newline. -EBADMSG if it is not a JSON object or
 * none of the kinds above; strings too long for their field are cut. */
int qmp_parse_line(const char *line, size_t len, QmpMessage *ret);
/* An event's stamp on our CLOCK_MONOTONIC (now, if it has none or a
 * stamp that cannot be right). */
uint64_t qmp_event_mono_ns(const QmpMessage *event);

/* Takes over fd, a connected stream socket. on_event runs for every event
 * read, from whichever of the calls below read it. */
int qmp_new(int fd, QmpEventFn on_event, void *userdata, Qmp **ret);
Qmp *qmp_free(Qmp *q);
int qmp_fd(const Qmp *q);
/* Neither NULL nor at end of file (QEMU closes the socket when it exits). */
bool qmp_usable(const Qmp *q);

/* Wait for QEMU's greeting, then negotiate capabilities. QEMU answers
 * qmp_capabilities only once the machine is set up. -EPROTO if the first
 * line is not a greeting, -ESRCH if QEMU hung up. */
int qmp_handshake(Qmp *q, uint64_t deadline_ns);
/* Run one argumentless command and wait for its answer, up to timeout_ms.
 * -EIO for an error answer (ret->desc says why), -ESRCH once QEMU hung
 * up. ret may be NULL. */
int qmp_exec(Qmp *q, const char *command, int timeout_ms, QmpMessage *ret);
/* Read what is there without blocking and dispatch it. 0 when drained,
 * -ESRCH at end of file (the socket stays readable: stop watching it). */
int qmp_drain(Qmp *q);
/* Dispatch input until *flag (set by the event callback) or the deadline:
 * 0, -ETIMEDOUT or -ESRCH. */
int qmp_wait(Qmp *q, const bool *flag, uint64_t deadline_ns);

#endif /* WARDEN_QEMU_QMP_H */
