/* SPDX-License-Identifier: MIT */
/*
 * The QMP client of the qemu backend (hypervisor/qemu/qmp.c), fed lines as
 * QEMU 7.2 writes them: the line parser on its own, then the client over a
 * socketpair for torn, joined, overlong and invalid lines, the handshake
 * and commands with their answers among events and late replies.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hypervisor/qemu/qmp.h"

#define GREETING                                                                                   \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "            \
	"\"package\": \"Debian 1:7.2+dfsg-7+deb12u7\"}, \"capabilities\": [\"oob\"]}}"
#define EV_STOP "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 250000}, \"event\": \"STOP\"}"
#define EV_RESET_HOST                                                                              \
	"{\"timestamp\": {\"seconds\": 1700000001, \"microseconds\": 5}, \"event\": \"RESET\", "     \
	"\"data\": {\"guest\": false, \"reason\": \"host-qmp-system-reset\"}}"

static int parse(const char *line, QmpMessage *m)
{
	return qmp_parse_line(line, strlen(line), m);
}

/* ---- the line parser ------------------------------------------------ */

static void test_greeting(void **state)
{
	QmpMessage m;

	(void)state;
	assert_int_equal(parse(GREETING, &m), 0);
	assert_int_equal(m.kind, QMP_GREETING);
	assert_false(m.has_id);
}

static void test_return(void **state)
{
	QmpMessage m;

	(void)state;
	assert_int_equal(parse("{\"return\": {}, \"id\": 1}", &m), 0);
	assert_int_equal(m.kind, QMP_RETURN);
	assert_true(m.has_id);
	assert_int_equal(m.id, 1);
	assert_string_equal(m.status, "");

	/* query-status, with QEMU's \r\n line end cut at the \n */
	assert_int_equal(parse("{\"return\": {\"status\": \"guest-panicked\", \"singlestep\": false, "
			       "\"running\": false}, \"id\": 4294967295}\r", &m), 0);
	assert_int_equal(m.kind, QMP_RETURN);
	assert_int_equal(m.id, 4294967295u);
	assert_string_equal(m.status, "guest-panicked");

	/* a return that is not an object (query-version and friends) */
	assert_int_equal(parse("{\"return\": [], \"id\": 2}", &m), 0);
	assert_int_equal(m.kind, QMP_RETURN);
	assert_string_equal(m.status, "");

	/* an id we never send is no id of ours */
	assert_int_equal(parse("{\"return\": {}, \"id\": \"x\"}", &m), 0);
	assert_false(m.has_id);
	assert_int_equal(parse("{\"return\": {}, \"id\": -3}", &m), 0);
	assert_false(m.has_id);
}

static void test_error(void **state)
{
	QmpMessage m;

	(void)state;
	assert_int_equal(parse("{\"id\": 3, \"error\": {\"class\": \"CommandNotFound\", "
			       "\"desc\": \"The command bogus has not been found\"}}", &m), 0);
	assert_int_equal(m.kind, QMP_ERROR);
	assert_int_equal(m.id, 3);
	assert_string_equal(m.desc, "The command bogus has not been found");

	/* escapes are decoded, not reduced to the escaped byte */
	assert_int_equal(parse("{\"error\": {\"class\": \"GenericError\", "
			       "\"desc\": \"a \\\"b\\\"\\n\\u00e9\"}, \"id\": 5}", &m), 0);
	assert_string_equal(m.desc, "a \"b\"\n\xc3\xa9");

	/* a desc longer than the field is cut, never overrun */
	char line[512], desc[300];
	memset(desc, 'd', sizeof(desc) - 1);
	desc[sizeof(desc) - 1] = 0;
	snprintf(line, sizeof(line), "{\"error\": {\"desc\": \"%s\"}, \"id\": 6}", desc);
	assert_int_equal(parse(line, &m), 0);
	assert_int_equal(strlen(m.desc), sizeof(m.desc) - 1);
}

static void test_events(void **state)
{
	QmpMessage m;

	(void)state;
	assert_int_equal(parse("{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 123456}, "
			       "\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": \"guest-panic\"}}",
			       &m), 0);
	assert_int_equal(m.kind, QMP_EVENT);
	assert_string_equal(m.event, "SHUTDOWN");
	assert_true(m.guest);
	assert_string_equal(m.reason, "guest-panic");
	assert_int_equal(m.timestamp_ns, 1700000000123456000ull);

	assert_int_equal(parse("{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 1}, "
			       "\"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": \"host-qmp-quit\"}}",
			       &m), 0);
	assert_false(m.guest);
	assert_string_equal(m.reason, "host-qmp-quit");

	assert_int_equal(parse(EV_RESET_HOST, &m), 0);
	assert_string_equal(m.event, "RESET");
	assert_false(m.guest);
	assert_string_equal(m.reason, "host-qmp-system-reset");

	assert_int_equal(parse("{\"timestamp\": {\"seconds\": 1700000002, \"microseconds\": 9}, "
			       "\"event\": \"RESET\", \"data\": {\"guest\": true, \"reason\": \"guest-reset\"}}",
			       &m), 0);
	assert_true(m.guest);
	assert_string_equal(m.reason, "guest-reset");

	assert_int_equal(parse("{\"timestamp\": {\"seconds\": 1700000003, \"microseconds\": 0}, "
			       "\"event\": \"GUEST_PANICKED\", \"data\": {\"action\": \"pause\"}}", &m), 0);
	assert_string_equal(m.event, "GUEST_PANICKED");
	assert_false(m.guest);
	assert_string_equal(m.reason, "");

	/* no data at all */
	assert_int_equal(parse(EV_STOP, &m), 0);
	assert_string_equal(m.event, "STOP");
	assert_false(m.guest);
	assert_int_equal(m.timestamp_ns, 1700000000250000000ull);

	/* no timestamp, or a broken one: dated "now" later */
	assert_int_equal(parse("{\"event\": \"RESUME\"}", &m), 0);
	assert_int_equal(m.timestamp_ns, 0);
	assert_int_equal(parse("{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": -1, "
			       "\"microseconds\": 0}}", &m), 0);
	assert_int_equal(m.timestamp_ns, 0);

	/* a nested "event" member is not an event */
	assert_int_equal(parse("{\"return\": {\"event\": \"STOP\"}, \"id\": 9}", &m), 0);
	assert_int_equal(m.kind, QMP_RETURN);

	/* "guest" must be JSON true, not merely truthy */
	assert_int_equal(parse("{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": 1}}", &m), 0);
	assert_false(m.guest);
}

static void test_invalid(void **state)
{
	static const char *const bad[] = {
		"",
		"   ",
		"not json",
		"{\"return\": {}, \"id\": 1",          /* torn */
		"{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 17", /* torn */
		"\"QMP\"",
		"[{\"return\": {}}]",
		"{}",
		"{\"id\": 1}",
		"{\"return\": {}, \"id\": 1} {\"return\": {}, \"id\": 2}", /* two in one line */
		"{\"return\": {}, \"id\": 1,}",
		"{'return': {}}",
	};
	QmpMessage m = { .kind = QMP_EVENT, .id = 77 };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i], &m), -EBADMSG);
		assert_int_equal(m.id, 77); /* untouched */
	}
	/* the length counts, not a NUL */
	assert_int_equal(qmp_parse_line("{\"return\": {}}garbage", 14, &m), 0);
	assert_int_equal(qmp_parse_line("{\"return\": {}}", 10, &m), -EBADMSG);
}

static uint64_t now(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void test_event_clock(void **state)
{
	QmpMessage m = { .kind = QMP_EVENT };
	uint64_t mono;

	(void)state;
	/* no stamp: now */
	mono = now(CLOCK_MONOTONIC);
	assert_true(qmp_event_mono_ns(&m) >= mono);

	/* a second ago on the wall clock is a second ago on ours */
	m.timestamp_ns = now(CLOCK_REALTIME) - 1000000000ull;
	mono = now(CLOCK_MONOTONIC);
	uint64_t at = qmp_event_mono_ns(&m);
	assert_true(at <= mono - 990000000ull);
	assert_true(at >= mono - 1100000000ull);

	/* from the future (clock stepped): now */
	m.timestamp_ns = now(CLOCK_REALTIME) + 60000000000ull;
	mono = now(CLOCK_MONOTONIC);
	assert_true(qmp_event_mono_ns(&m) >= mono);
}

/* ---- the client over a socket ---------------------------------------- */

typedef struct Peer {
	int fd[2]; /* [0] the client's, [1] QEMU's side */
	Qmp *q;
	unsigned n_events;
	QmpMessage events[8];
} Peer;

static void on_event(const QmpMessage *ev, void *userdata)
{
	Peer *p = userdata;

	if (p->n_events < 8)
		p->events[p->n_events] = *ev;
	p->n_events++;
}

static int peer_setup(void **state)
{
	Peer *p = calloc(1, sizeof(*p));

	assert_non_null(p);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p->fd), 0);
	assert_int_equal(qmp_new(p->fd[0], on_event, p, &p->q), 0);
	*state = p;
	return 0;
}

static int peer_teardown(void **state)
{
	Peer *p = *state;

	qmp_free(p->q); /* closes fd[0] */
	if (p->fd[1] >= 0)
		close(p->fd[1]);
	free(p);
	return 0;
}

static void peer_write(Peer *p, const char *s)
{
	size_t len = strlen(s), off = 0;

	while (off < len) {
		ssize_t n = write(p->fd[1], s + off, len - off);
		assert_true(n > 0);
		off += (size_t)n;
	}
}

/* What the client sent, as one string. */
static void peer_read(Peer *p, char *buf, size_t n)
{
	ssize_t k = recv(p->fd[1], buf, n - 1, MSG_DONTWAIT);

	assert_true(k >= 0);
	buf[k] = 0;
}

static void test_torn_and_joined(void **state)
{
	Peer *p = *state;

	peer_write(p, "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 250000}, \"ev");
	assert_int_equal(qmp_drain(p->q), 0);
	assert_int_equal(p->n_events, 0);
	peer_write(p, "ent\": \"STOP\"}\r");
	assert_int_equal(qmp_drain(p->q), 0);
	assert_int_equal(p->n_events, 0);
	peer_write(p, "\n");
	assert_int_equal(qmp_drain(p->q), 0);
	assert_int_equal(p->n_events, 1);
	assert_string_equal(p->events[0].event, "STOP");

	/* two events and the start of a third in one read; an invalid line
	 * and a stray reply in between are passed over */
	peer_write(p, EV_RESET_HOST "\r\nthis is not QMP\r\n{\"return\": {}, \"id\": 12}\r\n"
		      "{\"event\": \"RESUME\"}\r\n{\"event\": \"GUEST_PA");
	assert_int_equal(qmp_drain(p->q), 0);
	assert_int_equal(p->n_events, 3);
	assert_string_equal(p->events[1].event, "RESET");
	assert_string_equal(p->events[1].reason, "host-qmp-system-reset");
	assert_string_equal(p->events[2].event, "RESUME");
	peer_write(p, "NICKED\", \"data\": {\"action\": \"pause\"}}\r\n");
	assert_int_equal(qmp_drain(p->q), 0);
	assert_int_equal(p->n_events, 4);
	assert_string_equal(p->events[3].event, "GUEST_PANICKED");
}

/* An event line of exactly len bytes before its newline. */
static char *event_of_length(const char *name, size_t len)
{
	char *s = malloc(len + 2);
	int head = snprintf(s, len + 1, "{\"event\": \"%s\", \"data\": {\"pad\": \"", name);
	size_t tail = strlen("\"}}");

	assert_true((size_t)head + tail <= len);
	memset(s + head, 'x', len - (size_t)head - tail);
	memcpy(s + len - tail, "\"}}", tail);
	s[len] = '\n';
	s[len + 1] = 0;
	return s;
}

static void test_overlong(void **state)
{
	Peer *p = *state;
	char *fits = event_of_length("RESUME", QMP_LINE_MAX - 1);
	char *over = event_of_length("SHUTDOWN", QMP_LINE_MAX);
	char *huge = event_of_length("SHUTDOWN", 3 * QMP_LINE_MAX);

	/* the longest line that fits is parsed */
	peer_write(p, fits);
	assert_int_equal(qmp_drain(p->q), 0);
	assert_int_equal(p->n_events, 1);
	assert_string_equal(p->events[0].event, "RESUME");

	/* one byte more, or much more: dropped whole, never parsed from its
	 * middle, and the line after it is read as usual */
	peer_write(p, over);
	assert_int_equal(qmp_drain(p->q), 0);
	peer_write(p, huge);
	assert_int_equal(qmp_drain(p->q), 0);
	assert_int_equal(p->n_events, 1);
	peer_write(p, EV_STOP "\n");
	assert_int_equal(qmp_drain(p->q), 0);
	assert_int_equal(p->n_events, 2);
	assert_string_equal(p->events[1].event, "STOP");
	free(fits);
	free(over);
	free(huge);
}

static void test_eof(void **state)
{
	Peer *p = *state;

	assert_true(qmp_usable(p->q));
	peer_write(p, EV_STOP "\n");
	close(p->fd[1]);
	p->fd[1] = -1;
	/* what came before the end is still dispatched */
	assert_int_equal(qmp_drain(p->q), -ESRCH);
	assert_int_equal(p->n_events, 1);
	assert_false(qmp_usable(p->q));
	assert_int_equal(qmp_drain(p->q), -ESRCH);
	assert_int_equal(qmp_exec(p->q, "cont", 100, NULL), -ESRCH);
}

/* QEMU's side of one exchange, on a thread: write `before`, wait for one
 * command line from the client, keep it, answer `after`. */
typedef struct Exchange {
	int fd;
	const char *before, *after;
	char got[256];
} Exchange;

static void *exchange_run(void *arg)
{
	Exchange *x = arg;
	size_t len = 0;

	if (write(x->fd, x->before, strlen(x->before)) < 0)
		return NULL;
	while (len + 1 < sizeof(x->got) && !memchr(x->got, '\n', len)) {
		ssize_t n = read(x->fd, x->got + len, sizeof(x->got) - 1 - len);
		if (n <= 0)
			return NULL;
		len += (size_t)n;
		x->got[len] = 0;
	}
	if (write(x->fd, x->after, strlen(x->after)) < 0)
		return NULL;
	return NULL;
}

static void test_handshake(void **state)
{
	Peer *p = *state;
	Exchange x = {
		.fd = p->fd[1],
		.before = GREETING "\r\n",
		.after = "{\"return\": {}, \"id\": 1}\r\n",
	};
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, exchange_run, &x), 0);
	assert_int_equal(qmp_handshake(p->q, now(CLOCK_MONOTONIC) + 5000000000ull), 0);
	pthread_join(t, NULL);
	assert_string_equal(x.got, "{\"execute\":\"qmp_capabilities\",\"id\":1}\n");
}

static void test_handshake_not_qmp(void **state)
{
	Peer *p = *state;

	peer_write(p, "{\"return\": {}, \"id\": 1}\r\n" GREETING "\r\n");
	assert_int_equal(qmp_handshake(p->q, now(CLOCK_MONOTONIC) + 2000000000ull), -EPROTO);
}

static void test_handshake_timeout(void **state)
{
	Peer *p = *state;

	peer_write(p, "{\"QMP\": {\"version\"");
	assert_int_equal(qmp_handshake(p->q, now(CLOCK_MONOTONIC) + 50000000ull), -ETIMEDOUT);
}

static void test_exec(void **state)
{
	Peer *p = *state;
	QmpMessage rep;
	char sent[256];

	/* A late answer (id 99) and an event come before ours; the event is
	 * handled on the way, the late answer is not taken for ours. */
	peer_write(p, "{\"return\": {\"status\": \"paused\"}, \"id\": 99}\r\n" EV_STOP "\r\n"
		      "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}, "
		      "\"id\": 1}\r\n");
	assert_int_equal(qmp_exec(p->q, "query-status", 2000, &rep), 0);
	assert_string_equal(rep.status, "running");
	assert_int_equal(p->n_events, 1);
	peer_read(p, sent, sizeof(sent));
	assert_string_equal(sent, "{\"execute\":\"query-status\",\"id\":1}\n");

	peer_write(p, "{\"id\": 2, \"error\": {\"class\": \"GenericError\", \"desc\": \"nope\"}}\r\n");
	assert_int_equal(qmp_exec(p->q, "cont", 2000, &rep), -EIO);
	assert_string_equal(rep.desc, "nope");

	/* no answer: bounded */
	assert_int_equal(qmp_exec(p->q, "stop", 50, NULL), -ETIMEDOUT);
	/* its answer, late, is ignored by the next command */
	peer_write(p, "{\"return\": {}, \"id\": 3}\r\n{\"return\": {\"status\": \"x\"}, \"id\": 4}\r\n");
	assert_int_equal(qmp_exec(p->q, "query-status", 2000, &rep), 0);
	assert_int_equal(rep.id, 4);
	assert_string_equal(rep.status, "x");
}

static void test_wait_for_event(void **state)
{
	Peer *p = *state;
	bool flag = false;

	assert_int_equal(qmp_wait(p->q, &flag, now(CLOCK_MONOTONIC) + 30000000ull), -ETIMEDOUT);
	flag = true;
	assert_int_equal(qmp_wait(p->q, &flag, now(CLOCK_MONOTONIC)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting),
		cmocka_unit_test(test_return),
		cmocka_unit_test(test_error),
		cmocka_unit_test(test_events),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_event_clock),
		cmocka_unit_test_setup_teardown(test_torn_and_joined, peer_setup, peer_teardown),
		cmocka_unit_test_setup_teardown(test_overlong, peer_setup, peer_teardown),
		cmocka_unit_test_setup_teardown(test_eof, peer_setup, peer_teardown),
		cmocka_unit_test_setup_teardown(test_handshake, peer_setup, peer_teardown),
		cmocka_unit_test_setup_teardown(test_handshake_not_qmp, peer_setup, peer_teardown),
		cmocka_unit_test_setup_teardown(test_handshake_timeout, peer_setup, peer_teardown),
		cmocka_unit_test_setup_teardown(test_exec, peer_setup, peer_teardown),
		cmocka_unit_test_setup_teardown(test_wait_for_event, peer_setup, peer_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
