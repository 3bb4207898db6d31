/* SPDX-License-Identifier: MIT */
/*
 * wardenctl: the operator's CLI for wardend's HTTP API (api/README.md).
 * Usage, exit codes and examples: usage() below and docs/wardenctl.md.
 *
 * One process runs one command. main() parses the command line into an
 * Options that everything else only reads; there is no other global state.
 * Every mutation carries an Idempotency-Key and is retried with the same key
 * when the link fails, because the daemon then replays its stored answer
 * instead of acting twice: that is what makes retries safe on a flaky ground
 * link. Commands return exit codes; helpers return negative errno and leave
 * the message to their caller.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <jansson.h>

#include "macro.h"

#define DEFAULT_SOCKET "/run/warden/wardend.sock"
#define DEFAULT_TIMEOUT_S 30.0
#define DEFAULT_WAIT_S 60.0
#define SERVER_MAX_WAIT_S 300
/* The first try and three retries, all with the same Idempotency-Key. */
#define MAX_ATTEMPTS 4
#define TICK_MS 100
#define EVENTS_IDLE_NS (500 * NSEC_PER_MSEC)
/* The daemon sends a keepalive every 15 s; three missed ones mean the link is gone. */
#define EVENTS_DEAD_NS (45 * NSEC_PER_SEC)
#define EVENTS_BACKOFF_MAX_S 30
#define SSE_LINE_MAX (1024 * 1024)
#define SPEC_MAX_BYTES (16 * 1024 * 1024)
#define TOKEN_MAX_BYTES 4096
#define KEY_MAX 128
#define ARGS_MAX 8
#define SHA256_SIZE 32

/* Stable: scripts depend on them (docs/wardenctl.md). */
enum {
	EXIT_OK = 0,
	EXIT_REFUSED = 1,
	EXIT_USAGE = 2,
	EXIT_UNREACHABLE = 3,
	EXIT_NOT_FOUND = 4,
	EXIT_CONFLICT = 5,
	EXIT_AUTH = 6,
};

/* Command options; each command says which of them it takes. */
typedef enum CommandOption {
	OPT_WAIT = 1 << 0,
	OPT_KEY = 1 << 1,
	OPT_IF_MATCH = 1 << 2,
	OPT_APPLY = 1 << 3,
	OPT_AS = 1 << 4,
	OPT_BYTES = 1 << 5,
	OPT_FOLLOW = 1 << 6,
	OPT_SINCE = 1 << 7,
} CommandOption;

typedef struct Options {
	const char *socket;
	const char *url;
	const char *token_file;
	const char *cacert;
	bool json;
	bool help;
	bool version;
	double timeout_s;
	unsigned seen; /* CommandOption flags given */
	double wait_s;
	const char *idempotency_key;
	const char *if_match;
	const char *as;
	const char *since;
	bool apply;
	bool follow;
	long bytes;
	char *authorization; /* "Authorization: Bearer …", owned, wiped on exit */
	bool stdout_tty;
	bool stderr_tty;
	char *args[ARGS_MAX];
	size_t n_args;
} Options;

typedef struct Buffer {
	char *data;
	size_t size;
} Buffer;

/* Called every TICK_MS while a transfer runs; false ends the transfer. */
typedef bool (*TickFn)(CURL *easy, void *userdata);
/* Receives a successful (2xx) body as it arrives; returns n, or 0 to abort. */
typedef size_t (*DataFn)(const char *p, size_t n, void *userdata);

typedef struct Request {
	const char *method;
	const char *path; /* escaped, with the query */
	const char *accept;
	const char *content_type;
	const char *body; /* in-memory body */
	size_t body_size;
	FILE *upload; /* streamed body, rewound before every attempt */
	curl_off_t upload_size;
	const char *idempotency_key;
	const char *if_match;
	const char *content_digest;
	const char *last_event_id;
	double hold_s; /* the daemon may hold the answer this long (?wait=) */
	bool stream;   /* no overall timeout: the tick function decides */
	DataFn on_data;
	void *data_userdata;
	TickFn tick;
	void *tick_userdata;
} Request;

typedef struct Response {
	long status; /* 0: no HTTP answer */
	Buffer body;
	char *content_type;
	char *etag;
	bool replayed;
	CURLcode code;
	char error[CURL_ERROR_SIZE];
	bool maybe_sent; /* an attempt failed after the request may have left */
} Response;

typedef struct Transfer {
	const Request *q;
	Response *resp;
	CURL *easy;
} Transfer;

/* The "restart linux: running (boot 1.2 s)" line while --wait waits. */
typedef struct Progress {
	bool on;    /* --wait was given */
	bool tty;   /* stderr is a terminal: one line, rewritten */
	bool drawn; /* the terminal line holds our text */
	uint64_t start_ns;
	char label[160];
	char phase[24];
} Progress;

typedef struct Table {
	size_t n_cols;
	size_t n_cells;
	size_t allocated;
	char **cells;
	bool failed; /* out of memory while filling; reported at print time */
} Table;

typedef struct Command Command;
struct Command {
	const char *word;
	const char *verb; /* NULL: a one-word command */
	unsigned min_args;
	unsigned max_args;
	unsigned options;
	int (*run)(const Options *o, const char *verb, char **args);
};

/* ---- small helpers ------------------------------------------------------- */

static void curl_easy_cleanupp(CURL **e) {
	if (*e)
		curl_easy_cleanup(*e);
}

static void curl_slist_free_allp(struct curl_slist **l) {
	curl_slist_free_all(*l);
}

static void curl_freep(char **p) {
	curl_free(*p);
}

static void buffer_done(Buffer *b) {
	free(b->data);
	*b = (Buffer){ 0 };
}

static int buffer_append(Buffer *b, const void *p, size_t n) {
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

static void response_done(Response *r) {
	buffer_done(&r->body);
	free(r->content_type);
	free(r->etag);
	*r = (Response){ 0 };
}

static const char *jstr(json_t *o, const char *key) {
	return json_string_value(json_object_get(o, key));
}

static const char *dash(const char *s) {
	return s && *s ? s : "-";
}

static bool streq(const char *a, const char *b) {
	return a && b && strcmp(a, b) == 0;
}

static double elapsed_s(uint64_t since_ns) {
	return (double)(now_ns(CLOCK_MONOTONIC) - since_ns) / 1e9;
}

static void sleep_s(unsigned s) {
	struct timespec ts = { .tv_sec = s };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* "0.32 ms", "3.4 ms", "2.2 s", "3m12s", "2h05m", "3d04h". */
static const char *format_ms(double ms, char *buf, size_t n) {
	unsigned long long s = (unsigned long long)(ms / 1000.0);

	if (!isfinite(ms) || ms < 0)
		snprintf(buf, n, "-");
	else if (ms < 1.0)
		snprintf(buf, n, "%.2f ms", ms);
	else if (ms < 1000.0)
		snprintf(buf, n, "%.1f ms", ms);
	else if (ms < 60000.0)
		snprintf(buf, n, "%.1f s", ms / 1000.0);
	else if (s < 3600)
		snprintf(buf, n, "%llum%02llus", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, n, "%lluh%02llum", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, n, "%llud%02lluh", s / 86400, s % 86400 / 3600);
	return buf;
}

static const char *format_json_ms(json_t *j, char *buf, size_t n) {
	if (!json_is_number(j)) {
		snprintf(buf, n, "-");
		return buf;
	}
	return format_ms(json_number_value(j), buf, n);
}

/* Region sizes as the spec author wrote them: "4 MiB", or as given. */
static const char *format_size(json_t *j, char *buf, size_t n) {
	json_int_t v;

	if (json_is_string(j)) {
		snprintf(buf, n, "%s", json_string_value(j));
		return buf;
	}
	if (!json_is_integer(j)) {
		snprintf(buf, n, "-");
		return buf;
	}
	v = json_integer_value(j);
	if (v > 0 && v % (1024 * 1024) == 0)
		snprintf(buf, n, "%lld MiB", (long long)(v / (1024 * 1024)));
	else if (v > 0 && v % 1024 == 0)
		snprintf(buf, n, "%lld KiB", (long long)(v / 1024));
	else
		snprintf(buf, n, "%lld bytes", (long long)v);
	return buf;
}

/* Items of a JSON array joined by sep: strings as they are, numbers, or the
 * field key of objects. */
static const char *format_list(json_t *a, const char *key, const char *sep, char *buf, size_t n) {
	size_t i, off = 0;
	json_t *v;

	snprintf(buf, n, "-");
	json_array_foreach(a, i, v) {
		const char *s = json_is_string(v) ? json_string_value(v) : jstr(v, key);
		int k;
		if (json_is_integer(v))
			k = snprintf(buf + off, n - off, "%s%lld", i ? sep : "", (long long)json_integer_value(v));
		else
			k = snprintf(buf + off, n - off, "%s%s", i ? sep : "", dash(s));
		if (k < 0 || (size_t)k >= n - off)
			break;
		off += (size_t)k;
	}
	return buf;
}

/* A list in the answer may come bare or wrapped: [..] or {"KEY": [..]}. */
static json_t *json_list(json_t *j, const char *key) {
	return json_is_array(j) ? j : json_object_get(j, key);
}

/* ---- tables and key: value lines ---------------------------------------- */

static void table_cell(Table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void table_cell(Table *t, const char *fmt, ...) {
	va_list ap;
	char *s;
	int k;

	if (t->failed)
		return;
	if (t->n_cells == t->allocated) {
		size_t n = t->allocated ? t->allocated * 2 : 64;
		char **c = reallocarray(t->cells, n, sizeof *c);
		if (!c) {
			t->failed = true;
			return;
		}
		t->cells = c;
		t->allocated = n;
	}
	va_start(ap, fmt);
	k = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (k < 0) {
		t->failed = true;
		return;
	}
	t->cells[t->n_cells++] = s;
}

static int table_print(const Table *t) {
	size_t width[16] = { 0 };

	if (t->failed)
		return -ENOMEM;
	if (t->n_cols > ELEMENTSOF(width))
		abort();
	for (size_t i = 0; i < t->n_cells; i++) {
		size_t l = strlen(t->cells[i]);
		if (l > width[i % t->n_cols])
			width[i % t->n_cols] = l;
	}
	for (size_t i = 0; i < t->n_cells; i++) {
		bool last = i % t->n_cols == t->n_cols - 1 || i == t->n_cells - 1;
		if (last)
			printf("%s\n", t->cells[i]);
		else
			printf("%-*s  ", (int)width[i % t->n_cols], t->cells[i]);
	}
	return 0;
}

static void table_done(Table *t) {
	for (size_t i = 0; i < t->n_cells; i++)
		free(t->cells[i]);
	free(t->cells);
	*t = (Table){ 0 };
}

static void kv(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "key:    value", values aligned; an empty key continues the line above. */
static void kv(const char *key, const char *fmt, ...) {
	size_t l = strlen(key);
	va_list ap;

	if (l == 0)
		printf("%16s", "");
	else
		printf("%s:%*s", key, l < 15 ? (int)(15 - l) : 1, "");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* Pretty-prints JSON text by re-indenting it only: numbers, escapes and key
 * order stay byte for byte what the daemon sent. The text must be valid. */
static void print_json_text(const char *s, size_t n) {
	bool in_string = false, escaped = false;
	int depth = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (in_string) {
			putchar(c);
			if (escaped)
				escaped = false;
			else if (c == '\\')
				escaped = true;
			else if (c == '"')
				in_string = false;
			continue;
		}
		switch (c) {
		case ' ':
		case '\t':
		case '\r':
		case '\n':
			break;
		case '"':
			in_string = true;
			putchar(c);
			break;
		case '{':
		case '[': {
			size_t j = i + 1;
			while (j < n && strchr(" \t\r\n", s[j]))
				j++;
			if (j < n && (s[j] == '}' || s[j] == ']')) {
				printf("%c%c", c, s[j]);
				i = j;
				break;
			}
			printf("%c\n%*s", c, 2 * ++depth, "");
			break;
		}
		case '}':
		case ']':
			depth = depth > 0 ? depth - 1 : 0;
			printf("\n%*s%c", 2 * depth, "", c);
			break;
		case ',':
			printf(",\n%*s", 2 * depth, "");
			break;
		case ':':
			fputs(": ", stdout);
			break;
		default:
			putchar(c);
		}
	}
	putchar('\n');
}

static int oom(void) {
	fprintf(stderr, "wardenctl: out of memory\n");
	return EXIT_REFUSED;
}

/* ---- HTTP ----------------------------------------------------------------- */

static int exit_code_for_status(long status) {
	if (status == 401 || status == 403)
		return EXIT_AUTH;
	if (status == 404)
		return EXIT_NOT_FOUND;
	if (status == 409 || status == 412)
		return EXIT_CONFLICT;
	return EXIT_REFUSED;
}

static const char *endpoint(const Options *o) {
	return o->url ? o->url : o->socket;
}

/* "/cells/" + escaped COMPONENT + SUFFIX; NULL when out of memory. */
static char *path_make(const char *prefix, const char *component, const char *suffix) {
	_cleanup_(curl_freep) char *esc = NULL;
	char *p;

	if (component) {
		esc = curl_easy_escape(NULL, component, 0);
		if (!esc)
			return NULL;
	}
	if (asprintf(&p, "%s%s%s", prefix, esc ? esc : "", suffix ? suffix : "") < 0)
		return NULL;
	return p;
}

/* Appends "?KEY=VALUE" or "&KEY=VALUE" to *path. */
static int path_add_query(char **path, const char *key, const char *value) {
	_cleanup_(curl_freep) char *esc = curl_easy_escape(NULL, value, 0);
	char *p;

	if (!esc)
		return -ENOMEM;
	if (asprintf(&p, "%s%c%s=%s", *path, strchr(*path, '?') ? '&' : '?', key, esc) < 0)
		return -ENOMEM;
	free(*path);
	*path = p;
	return 0;
}

static int build_url(const Options *o, const char *path, char **ret) {
	size_t l;

	if (!o->url)
		return asprintf(ret, "http://localhost%s", path) < 0 ? -ENOMEM : 0;
	l = strlen(o->url);
	while (l > 0 && o->url[l - 1] == '/')
		l--;
	return asprintf(ret, "%.*s%s", (int)l, o->url, path) < 0 ? -ENOMEM : 0;
}

static int add_header(struct curl_slist **l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int add_header(struct curl_slist **l, const char *fmt, ...) {
	_cleanup_free_ char *s = NULL;
	struct curl_slist *n;
	va_list ap;
	int k;

	va_start(ap, fmt);
	k = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (k < 0)
		return -ENOMEM;
	n = curl_slist_append(*l, s);
	if (!n)
		return -ENOMEM;
	*l = n;
	return 0;
}

static int build_headers(const Options *o, const Request *q, struct curl_slist **l) {
	int r = 0;

	if (o->authorization) {
		struct curl_slist *n = curl_slist_append(*l, o->authorization);
		if (!n)
			return -ENOMEM;
		*l = n;
	}
	r = r ?: add_header(l, "Accept: %s", q->accept ? q->accept : "application/json, application/problem+json");
	if (q->content_type)
		r = r ?: add_header(l, "Content-Type: %s", q->content_type);
	if (q->idempotency_key)
		r = r ?: add_header(l, "Idempotency-Key: %s", q->idempotency_key);
	if (q->if_match)
		r = r ?: add_header(l, "If-Match: %s", q->if_match);
	if (q->content_digest)
		r = r ?: add_header(l, "Content-Digest: %s", q->content_digest);
	if (q->last_event_id)
		r = r ?: add_header(l, "Last-Event-ID: %s", q->last_event_id);
	return r;
}

static size_t on_body(char *p, size_t size, size_t n, void *userdata) {
	Transfer *t = userdata;
	size_t len = size * n;

	if (t->resp->status == 0)
		curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->resp->status);
	if (t->q->on_data && t->resp->status >= 200 && t->resp->status < 300)
		return t->q->on_data(p, len, t->q->data_userdata);
	return buffer_append(&t->resp->body, p, len) < 0 ? 0 : len;
}

static size_t on_upload_read(char *p, size_t size, size_t n, void *userdata) {
	FILE *f = userdata;
	size_t k = fread(p, size, n, f);

	if (k == 0 && ferror(f))
		return CURL_READFUNC_ABORT;
	return k;
}

static int on_upload_seek(void *userdata, curl_off_t offset, int origin) {
	return fseeko(userdata, (off_t)offset, origin) < 0 ? CURL_SEEKFUNC_CANTSEEK : CURL_SEEKFUNC_OK;
}

static bool handle_setup(const Options *o, const Request *q, CURL *e, const char *url, struct curl_slist *h,
                         Transfer *t) {
	long timeout_ms = lround(o->timeout_s * 1000.0);
	bool bad = false;

	bad |= curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "wardenctl/" WARDEN_VERSION) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, h) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->resp->error) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, t) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms) != CURLE_OK;
	if (!o->url)
		bad |= curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, o->socket) != CURLE_OK;
	if (o->cacert)
		bad |= curl_easy_setopt(e, CURLOPT_CAINFO, o->cacert) != CURLE_OK;
	if (q->upload) {
		/* A large image on a slow link may take long; only a stall fails it. */
		bad |= curl_easy_setopt(e, CURLOPT_UPLOAD, 1L) != CURLE_OK;
		bad |= curl_easy_setopt(e, CURLOPT_READFUNCTION, on_upload_read) != CURLE_OK;
		bad |= curl_easy_setopt(e, CURLOPT_READDATA, q->upload) != CURLE_OK;
		bad |= curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_upload_seek) != CURLE_OK;
		bad |= curl_easy_setopt(e, CURLOPT_SEEKDATA, q->upload) != CURLE_OK;
		bad |= curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, q->upload_size) != CURLE_OK;
		bad |= curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L) != CURLE_OK;
		bad |= curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)ceil(o->timeout_s)) != CURLE_OK;
	} else if (!q->stream) {
		bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms + lround(q->hold_s * 1000.0)) != CURLE_OK;
	}
	if (q->body || (streq(q->method, "POST") && !q->upload)) {
		bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_size) != CURLE_OK;
		bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, q->body ? q->body : "") != CURLE_OK;
	}
	bad |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, q->method) != CURLE_OK;
	return !bad;
}

static char *response_header(CURL *e, const char *name) {
	struct curl_header *h;

	if (curl_easy_header(e, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
		return NULL;
	return strdup(h->value);
}

/* Runs one transfer to its end. curl's multi interface lets the tick function
 * redraw a progress line or end an idle event stream between reads. */
static CURLcode transfer_run(CURL *e, TickFn tick, void *userdata) {
	CURLM *m = curl_multi_init();
	CURLcode rc = CURLE_OK;
	struct CURLMsg *msg;
	int running = 1, left;

	if (!m)
		return CURLE_OUT_OF_MEMORY;
	if (curl_multi_add_handle(m, e) != CURLM_OK) {
		curl_multi_cleanup(m);
		return CURLE_FAILED_INIT;
	}
	for (;;) {
		if (curl_multi_perform(m, &running) != CURLM_OK) {
			rc = CURLE_FAILED_INIT;
			break;
		}
		if (!running)
			break;
		if (tick && !tick(e, userdata)) {
			rc = CURLE_ABORTED_BY_CALLBACK;
			break;
		}
		if (curl_multi_poll(m, NULL, 0, TICK_MS, NULL) != CURLM_OK) {
			rc = CURLE_FAILED_INIT;
			break;
		}
	}
	while (!running && (msg = curl_multi_info_read(m, &left)))
		if (msg->msg == CURLMSG_DONE)
			rc = msg->data.result;
	curl_multi_remove_handle(m, e);
	curl_multi_cleanup(m);
	return rc;
}

/* One attempt. 0 when the daemon answered (any status); -EIO when the
 * transfer failed (resp->code and resp->error say why). */
static int request_once(const Options *o, const Request *q, Response *resp) {
	_cleanup_(curl_easy_cleanupp) CURL *e = curl_easy_init();
	_cleanup_(curl_slist_free_allp) struct curl_slist *h = NULL;
	_cleanup_free_ char *url = NULL;
	Transfer t = { .q = q, .resp = resp, .easy = e };
	int r;

	if (!e)
		return -ENOMEM;
	r = build_url(o, q->path, &url);
	if (r < 0)
		return r;
	r = build_headers(o, q, &h);
	if (r < 0)
		return r;
	if (!handle_setup(o, q, e, url, h, &t))
		return -ENOMEM;
	resp->code = transfer_run(e, q->tick, q->tick_userdata);
	if (resp->code != CURLE_OK && resp->code != CURLE_ABORTED_BY_CALLBACK) {
		long os_errno = 0;
		/* curl's text names "localhost port 80" for a unix socket too */
		if (curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK && os_errno && !o->url)
			snprintf(resp->error, sizeof resp->error, "%s (%s)", curl_easy_strerror(resp->code),
			         strerror((int)os_errno));
		else if (!resp->error[0])
			snprintf(resp->error, sizeof resp->error, "%s", curl_easy_strerror(resp->code));
		return -EIO;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp->status);
	if (resp->status == 0) {
		snprintf(resp->error, sizeof resp->error, "no answer");
		return -EIO;
	}
	resp->content_type = response_header(e, "Content-Type");
	resp->etag = response_header(e, "ETag");
	{
		_cleanup_free_ char *replayed = response_header(e, "Idempotent-Replayed");
		resp->replayed = streq(replayed, "true");
	}
	return 0;
}

/* Failures where the request may not have reached the daemon, or its answer
 * did not reach us: worth the same request again. */
static bool transient(CURLcode c) {
	switch (c) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

static void clear_progress_line(const Options *o) {
	if (o->stderr_tty)
		fputs("\r\033[K", stderr);
}

/* Sends q, retrying transport failures with the same request (and so the
 * same Idempotency-Key). Returns like request_once(). */
static int request_send(const Options *o, const Request *q, Response *resp) {
	bool maybe_sent = false;

	for (unsigned attempt = 1;; attempt++) {
		unsigned delay = 1u << (attempt - 1);
		int r;

		response_done(resp);
		if (q->upload && fseeko(q->upload, 0, SEEK_SET) < 0)
			return -errno;
		r = request_once(o, q, resp);
		maybe_sent |= r == -EIO && resp->code != CURLE_COULDNT_CONNECT && resp->code != CURLE_COULDNT_RESOLVE_HOST;
		resp->maybe_sent = maybe_sent;
		if (r != -EIO || attempt >= MAX_ATTEMPTS || !transient(resp->code))
			return r;
		clear_progress_line(o);
		fprintf(stderr, "wardenctl: %s %s: %s; retrying in %u s (attempt %u of %u%s%s)\n", q->method, q->path,
		        resp->error, delay, attempt + 1, MAX_ATTEMPTS, q->idempotency_key ? ", Idempotency-Key " : "",
		        q->idempotency_key ? q->idempotency_key : "");
		sleep_s(delay);
	}
}

/* Prints a problem+json answer as "wardenctl: TITLE: DETAIL"; with --json
 * the document also goes to stdout for scripts. Returns the exit code. */
static int report_http_error(const Options *o, const Response *resp) {
	_cleanup_(json_decrefp) json_t *j = NULL;
	const char *title = NULL, *detail = NULL;

	if (resp->body.data)
		j = json_loadb(resp->body.data, resp->body.size, 0, NULL);
	title = jstr(j, "title");
	detail = jstr(j, "detail");
	if (j && o->json)
		print_json_text(resp->body.data, resp->body.size);
	clear_progress_line(o);
	if (title || detail)
		fprintf(stderr, "wardenctl: %s: %s\n", title ? title : "Error", detail ? detail : "(no detail)");
	else
		fprintf(stderr, "wardenctl: HTTP %ld: %.200s\n", resp->status,
		        resp->body.size ? resp->body.data : "(empty answer)");
	if (resp->status == 401 && !o->authorization)
		fprintf(stderr, "wardenctl: TCP listeners need a bearer token: --token-file or WARDEN_TOKEN_FILE\n");
	return exit_code_for_status(resp->status);
}

static int report_unreachable(const Options *o, const Request *q, const Response *resp) {
	clear_progress_line(o);
	fprintf(stderr, "wardenctl: cannot reach wardend at %s: %s\n", endpoint(o), resp->error);
	if (q->idempotency_key && resp->maybe_sent)
		fprintf(stderr,
		        "wardenctl: %s %s may or may not have been applied; repeat the command with "
		        "--idempotency-key %s to retry it safely\n",
		        q->method, q->path, q->idempotency_key);
	return EXIT_UNREACHABLE;
}

/* Sends q and reports failures. Returns EXIT_OK with a 2xx answer in resp. */
static int request_run(const Options *o, const Request *q, Response *resp) {
	int r = request_send(o, q, resp);

	if (r == -EIO)
		return report_unreachable(o, q, resp);
	if (r < 0) {
		fprintf(stderr, "wardenctl: %s %s: %s\n", q->method, q->path, strerror(-r));
		return EXIT_REFUSED;
	}
	if (resp->status < 200 || resp->status > 299)
		return report_http_error(o, resp);
	if (resp->replayed && q->idempotency_key) {
		clear_progress_line(o);
		fprintf(stderr, "wardenctl: the daemon had already handled Idempotency-Key %s; this is its stored answer\n",
		        q->idempotency_key);
	}
	return EXIT_OK;
}

static int parse_json_answer(const Response *resp, json_t **ret) {
	json_error_t e;
	json_t *j = json_loadb(resp->body.data ? resp->body.data : "", resp->body.size, 0, &e);

	if (!j) {
		fprintf(stderr, "wardenctl: the daemon sent malformed JSON: %s (line %d)\n", e.text, e.line);
		return EXIT_REFUSED;
	}
	*ret = j;
	return EXIT_OK;
}

/* GET PATH; on success *ret holds the parsed answer and resp the raw one. */
static int get_json(const Options *o, const char *path, Response *resp, json_t **ret) {
	Request q = { .method = "GET", .path = path };
	int r = request_run(o, &q, resp);

	return r != EXIT_OK ? r : parse_json_answer(resp, ret);
}

/* ---- idempotency keys and preconditions ---------------------------------- */

static int random_key(char ret[static 33]) {
	uint8_t b[16];

	if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
		return -errno ?: -EIO;
	for (size_t i = 0; i < sizeof b; i++)
		snprintf(ret + 2 * i, 3, "%02x", b[i]);
	return 0;
}

static bool key_valid(const char *k) {
	size_t n = strlen(k);

	if (n < 1 || n > KEY_MAX || k[0] == ' ' || k[n - 1] == ' ')
		return false;
	for (size_t i = 0; i < n; i++)
		if (k[i] < 0x20 || k[i] > 0x7e)
			return false;
	return true;
}

/* The user's key, or a fresh one in buf. NULL when there is no randomness. */
static const char *mutation_key(const Options *o, char buf[static 33]) {
	int r;

	if (o->idempotency_key)
		return o->idempotency_key;
	r = random_key(buf);
	if (r < 0) {
		fprintf(stderr, "wardenctl: cannot generate an Idempotency-Key: %s\n", strerror(-r));
		return NULL;
	}
	return buf;
}

/* --if-match 3 → "3"; quoted ETags and * pass as they are. */
static int if_match_value(const char *s, char *buf, size_t n) {
	size_t l = strlen(s);

	if (streq(s, "*") || (l >= 2 && s[0] == '"' && s[l - 1] == '"')) {
		snprintf(buf, n, "%s", s);
		return 0;
	}
	if (l == 0 || l > 20 || strspn(s, "0123456789") != l)
		return -EINVAL;
	snprintf(buf, n, "\"%s\"", s);
	return 0;
}

/* ETag "7" → 7 for display; NULL when absent. */
static const char *revision_of(const Response *resp, json_t *cell, char *buf, size_t n) {
	json_t *rev = json_object_get(cell, "revision");

	if (json_is_integer(rev))
		snprintf(buf, n, "%lld", (long long)json_integer_value(rev));
	else if (resp->etag && resp->etag[0] == '"')
		snprintf(buf, n, "%.*s", (int)strcspn(resp->etag + 1, "\""), resp->etag + 1);
	else
		return NULL;
	return buf;
}

/* ---- operations and --wait ------------------------------------------------ */

static bool phase_finished(const char *phase) {
	return streq(phase, "succeeded") || streq(phase, "failed");
}

static void op_label(json_t *op, const char *fallback, char *buf, size_t n) {
	const char *kind = jstr(op, "kind"), *cell = jstr(op, "cell");

	if (kind)
		snprintf(buf, n, "%s%s%s", kind, cell ? " " : "", cell ? cell : "");
	else
		snprintf(buf, n, "%s", fallback);
}

/* "stop 0.30 ms, boot 2.2 s, total 2.2 s"; empty when there are none. */
static const char *format_timings(json_t *op, char *buf, size_t n) {
	json_t *t = json_object_get(op, "timings_ms"), *v;
	const char *k;
	size_t off = 0;

	buf[0] = 0;
	json_object_foreach(t, k, v) {
		char d[32];
		int w;
		if (streq(k, "queued") || !json_is_number(v))
			continue;
		w = snprintf(buf + off, n - off, "%s%s %s", off ? ", " : "", k, format_ms(json_number_value(v), d, sizeof d));
		if (w < 0 || (size_t)w >= n - off)
			break;
		off += (size_t)w;
	}
	return buf;
}

/* "restart linux: succeeded (stop 0.30 ms, boot 2.2 s, total 2.2 s)" */
static void op_summary(json_t *op, const char *label, char *buf, size_t n) {
	char t[256];

	format_timings(op, t, sizeof t);
	snprintf(buf, n, "%s: %s%s%s%s", label, dash(jstr(op, "phase")), t[0] ? " (" : "", t, t[0] ? ")" : "");
}

static void progress_begin(Progress *p, const Options *o, const char *label) {
	*p = (Progress){ .on = o->seen & OPT_WAIT, .tty = o->stderr_tty, .start_ns = now_ns(CLOCK_MONOTONIC) };
	snprintf(p->label, sizeof p->label, "%s", label);
	snprintf(p->phase, sizeof p->phase, "running");
	if (p->on && !p->tty)
		fprintf(stderr, "%s: running (waiting up to %.0f s)\n", p->label, o->wait_s);
}

static void progress_update(Progress *p, json_t *op) {
	char label[sizeof p->label];

	op_label(op, p->label, label, sizeof label);
	snprintf(p->label, sizeof p->label, "%s", label);
	snprintf(p->phase, sizeof p->phase, "%s", dash(jstr(op, "phase")));
}

static void progress_draw(Progress *p) {
	if (!p->on || !p->tty)
		return;
	fprintf(stderr, "\r\033[K%s: %s (%.1f s)", p->label, p->phase, elapsed_s(p->start_ns));
	p->drawn = true;
}

static bool tick_progress(CURL *e, void *userdata) {
	(void)e;
	progress_draw(userdata);
	return true;
}

/* Ends the progress line with the outcome. On a terminal the line is cleared
 * when stdout shows the outcome anyway. */
static void progress_end(Progress *p, const Options *o, const char *summary) {
	if (!p->on)
		return;
	if (p->tty) {
		fputs("\r\033[K", stderr);
		if (!o->stdout_tty || o->json)
			fprintf(stderr, "%s\n", summary);
	} else
		fprintf(stderr, "%s\n", summary);
	p->on = false;
}

static void progress_abort(Progress *p) {
	if (p->on && p->tty && p->drawn)
		fputs("\r\033[K", stderr);
	p->on = false;
}

static void print_op_error(json_t *op) {
	json_t *err = json_object_get(op, "error");
	const char *title = jstr(err, "title"), *detail = jstr(err, "detail");

	if (json_is_string(err))
		detail = json_string_value(err);
	fprintf(stderr, "wardenctl: %s: %s\n", title ? title : "Operation failed", detail ? detail : "(no detail)");
}

/* Polls GET /operations/ID?wait= until the operation finishes or the user's
 * deadline passes. raw and op hold the newest answer. */
static int operation_poll(const Options *o, Progress *p, uint64_t deadline_ns, Buffer *raw, json_t **op) {
	for (;;) {
		_cleanup_(response_done) Response resp = { 0 };
		_cleanup_free_ char *path = NULL;
		uint64_t now = now_ns(CLOCK_MONOTONIC);
		const char *id = jstr(*op, "operation");
		double wait;
		char waitbuf[16];
		Request q = { .method = "GET", .tick = tick_progress, .tick_userdata = p };
		json_t *j = NULL;
		int r;

		if (phase_finished(jstr(*op, "phase")) || !p->on || now >= deadline_ns || !id)
			return EXIT_OK;
		wait = fmin(ceil((double)(deadline_ns - now) / 1e9), SERVER_MAX_WAIT_S);
		snprintf(waitbuf, sizeof waitbuf, "%.0f", wait);
		path = path_make("/operations/", id, NULL);
		if (!path || path_add_query(&path, "wait", waitbuf) < 0)
			return oom();
		q.path = path;
		q.hold_s = wait;
		r = request_run(o, &q, &resp);
		if (r != EXIT_OK) {
			fprintf(stderr, "wardenctl: lost track of operation %s; it may still run: wardenctl operation show %s\n",
			        id, id);
			return r;
		}
		r = parse_json_answer(&resp, &j);
		if (r != EXIT_OK)
			return r;
		json_decref(*op);
		*op = j;
		buffer_done(raw);
		*raw = resp.body;
		resp.body = (Buffer){ 0 };
		progress_update(p, *op);
	}
}

static void show_operation(json_t *op) {
	json_t *err = json_object_get(op, "error"), *result = json_object_get(op, "result");
	json_t *cells = json_object_get(op, "cells");
	char buf[512];

	kv("operation", "%s", dash(jstr(op, "operation")));
	kv("kind", "%s", dash(jstr(op, "kind")));
	kv("cell", "%s", dash(jstr(op, "cell")));
	if (json_array_size(cells) > 1 || (json_array_size(cells) == 1 && !jstr(op, "cell")))
		kv("cells", "%s", format_list(cells, "name", ", ", buf, sizeof buf));
	kv("phase", "%s", dash(jstr(op, "phase")));
	kv("created", "%s", dash(jstr(op, "created")));
	kv("timings", "%s", dash(format_timings(op, buf, sizeof buf)));
	if (json_is_object(err))
		kv("error", "%s: %s", dash(jstr(err, "title")), dash(jstr(err, "detail")));
	if (result && !json_is_null(result)) {
		_cleanup_free_ char *s = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
		kv("result", "%s", s ? s : "-");
	}
}

/* The outcome of an operation: waits for it when --wait asks, prints it and
 * maps it to the exit code. detail: `operation show` prints every field and,
 * without --wait, succeeds whatever the operation's phase. */
static int operation_finish(const Options *o, Progress *p, uint64_t deadline_ns, Buffer *raw, json_t **op,
                            bool detail) {
	bool waited = o->seen & OPT_WAIT;
	char label[160], summary[512];
	const char *phase, *id;
	int r;

	progress_update(p, *op);
	r = operation_poll(o, p, deadline_ns, raw, op);
	if (r != EXIT_OK) {
		progress_abort(p);
		return r;
	}
	phase = jstr(*op, "phase");
	id = dash(jstr(*op, "operation"));
	op_label(*op, p->label, label, sizeof label);
	if (phase_finished(phase))
		op_summary(*op, label, summary, sizeof summary);
	else
		snprintf(summary, sizeof summary, "%s: %s (operation %s)", label, dash(phase), id);
	progress_end(p, o, summary);
	if (o->json)
		print_json_text(raw->data, raw->size);
	else if (detail)
		show_operation(*op);
	else
		printf("%s\n", summary);
	if (detail && !waited)
		return EXIT_OK;
	if (streq(phase, "succeeded"))
		return EXIT_OK;
	if (streq(phase, "failed")) {
		print_op_error(*op);
		return EXIT_REFUSED;
	}
	if (!waited)
		return EXIT_OK;
	fprintf(stderr, "wardenctl: %s did not finish within %.1f s; it goes on: wardenctl operation show %s --wait\n",
	        label, o->wait_s, id);
	return EXIT_REFUSED;
}

/* ---- mutations ------------------------------------------------------------ */

/* Prints the answer of a mutation that returned no operation; returns the
 * exit code. */
typedef int (*PrintAnswerFn)(const Options *o, const Response *resp, json_t *j, const char *label, void *userdata);

static int print_accepted(const Options *o, const Response *resp, json_t *j, const char *label, void *userdata) {
	(void)userdata;
	if (o->json)
		print_json_text(resp->body.data, resp->body.size);
	else if (jstr(j, "state"))
		printf("%s: accepted (cell is %s)\n", label, jstr(j, "state"));
	else
		printf("%s: accepted\n", label);
	return EXIT_OK;
}

/* Sends a mutation with its Idempotency-Key (and ?wait= with --wait), then
 * follows the operation it returns, or prints the answer with print. Every
 * retry must be the same request, so the path with ?wait= is fixed here.
 * q->path points into this function's copy until it returns. */
static int run_mutation(const Options *o, Request *q, const char *label, PrintAnswerFn print, void *userdata) {
	_cleanup_(response_done) Response resp = { 0 };
	_cleanup_(json_decrefp) json_t *j = NULL;
	_cleanup_free_ char *path = strdup(q->path);
	char key[33];
	Progress p;
	uint64_t deadline;
	int r;

	if (!path)
		return oom();
	q->idempotency_key = mutation_key(o, key);
	if (!q->idempotency_key)
		return EXIT_REFUSED;
	if (o->seen & OPT_WAIT) {
		char w[16];
		q->hold_s = fmin(ceil(o->wait_s), SERVER_MAX_WAIT_S);
		snprintf(w, sizeof w, "%.0f", q->hold_s);
		if (path_add_query(&path, "wait", w) < 0)
			return oom();
	}
	q->path = path;
	progress_begin(&p, o, label);
	deadline = p.start_ns + (uint64_t)(o->wait_s * 1e9);
	if (!q->tick) {
		q->tick = tick_progress;
		q->tick_userdata = &p;
	}
	r = request_run(o, q, &resp);
	if (r == EXIT_OK)
		r = parse_json_answer(&resp, &j);
	if (r != EXIT_OK) {
		progress_abort(&p);
		return r;
	}
	if (!jstr(j, "operation")) {
		progress_abort(&p);
		if (o->seen & OPT_WAIT)
			fprintf(stderr, "wardenctl: the daemon answered without an operation; there is nothing to wait for\n");
		return print(o, &resp, j, label, userdata);
	}
	return operation_finish(o, &p, deadline, &resp.body, &j, false);
}

/* ---- reading files -------------------------------------------------------- */

static int read_file(const char *file, size_t max, Buffer *ret) {
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

/* Reads a cell spec: EXIT_OK with the text in buf and the parsed spec. */
static int read_spec(const char *file, Buffer *buf, json_t **ret) {
	json_error_t e;
	json_t *j;
	int r = read_file(file, SPEC_MAX_BYTES, buf);

	if (r < 0) {
		fprintf(stderr, "wardenctl: %s: %s\n", file, strerror(-r));
		return EXIT_USAGE;
	}
	j = json_loadb(buf->data, buf->size, JSON_REJECT_DUPLICATES, &e);
	if (!j) {
		fprintf(stderr, "wardenctl: %s: not JSON: %s (line %d, column %d)\n", file, e.text, e.line, e.column);
		return EXIT_USAGE;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		fprintf(stderr, "wardenctl: %s: a cell spec is a JSON object\n", file);
		return EXIT_USAGE;
	}
	*ret = j;
	return EXIT_OK;
}

static int sha256_file(FILE *f, uint8_t digest[static SHA256_SIZE]) {
	gnutls_hash_hd_t h;
	char buf[65536];
	size_t n;

	if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
		return -EIO;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		if (gnutls_hash(h, buf, n) < 0) {
			gnutls_hash_deinit(h, NULL);
			return -EIO;
		}
	gnutls_hash_deinit(h, digest);
	return ferror(f) ? -EIO : 0;
}

/* "sha-256=:BASE64:" (RFC 9530) and the lowercase hex of the digest. */
static int digest_strings(const uint8_t digest[static SHA256_SIZE], char **ret_header, char hex[static 65]) {
	gnutls_datum_t in = { .data = (unsigned char *)digest, .size = SHA256_SIZE }, out = { 0 };
	int k;

	for (size_t i = 0; i < SHA256_SIZE; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	if (gnutls_base64_encode2(&in, &out) < 0)
		return -ENOMEM;
	k = asprintf(ret_header, "sha-256=:%.*s:", (int)out.size, (const char *)out.data);
	gnutls_free(out.data);
	return k < 0 ? -ENOMEM : 0;
}

/* ---- show commands ------------------------------------------------------- */

typedef int (*ShowFn)(const Response *resp, json_t *j);

static int get_and_show(const Options *o, const char *path, ShowFn show) {
	_cleanup_(response_done) Response resp = { 0 };
	_cleanup_(json_decrefp) json_t *j = NULL;
	int r = get_json(o, path, &resp, &j);

	if (r != EXIT_OK)
		return r;
	if (o->json) {
		print_json_text(resp.body.data, resp.body.size);
		return EXIT_OK;
	}
	return show(&resp, j);
}

static int get_text(const Options *o, const char *path) {
	_cleanup_(response_done) Response resp = { 0 };
	Request q = { .method = "GET", .path = path, .accept = "text/plain, application/problem+json" };
	int r = request_run(o, &q, &resp);

	if (r == EXIT_OK && resp.body.size)
		fwrite(resp.body.data, 1, resp.body.size, stdout);
	return r;
}

/* How long ago an RFC 3339 UTC timestamp was, in ms; NAN when unparsable. */
static double age_ms(const char *at) {
	struct tm tm = { 0 };
	struct timespec now;
	const char *rest = at ? strptime(at, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	double frac = 0;

	if (!rest)
		return NAN;
	if (*rest == '.')
		frac = strtod(rest, NULL);
	clock_gettime(CLOCK_REALTIME, &now);
	return ((double)now.tv_sec + (double)now.tv_nsec / 1e9 - ((double)timegm(&tm) + frac)) * 1000.0;
}

static int show_health(const Response *resp, json_t *j) {
	json_t *cells = json_object_get(j, "cells"), *v, *sharing = json_object_get(j, "cpu_sharing");
	json_t *uptime = json_object_get(j, "uptime_s");
	char buf[512], d[32];
	const char *k;
	size_t off;

	(void)resp;
	kv("status", "%s", dash(jstr(j, "status")));
	kv("version", "%s", dash(jstr(j, "version")));
	kv("uptime", "%s", json_is_number(uptime) ? format_ms(json_number_value(uptime) * 1000.0, d, sizeof d) : "-");
	snprintf(buf, sizeof buf, "%lld total", (long long)json_integer_value(json_object_get(cells, "total")));
	off = strlen(buf);
	json_object_foreach(cells, k, v) {
		bool first = !strchr(buf, ':');
		int w;
		if (streq(k, "total") || json_integer_value(v) == 0)
			continue;
		w = snprintf(buf + off, sizeof buf - off, "%s%lld %s", first ? ": " : ", ", (long long)json_integer_value(v), k);
		if (w < 0 || (size_t)w >= sizeof buf - off)
			break;
		off += (size_t)w;
	}
	kv("cells", "%s", buf);
	kv("listeners", "%s", format_list(json_object_get(j, "listeners"), "name", ", ", buf, sizeof buf));
	if (json_is_boolean(sharing))
		kv("cpu sharing", "%s", json_is_true(sharing) ? "on (development only)" : "off");
	return EXIT_OK;
}

static int show_cells(const Response *resp, json_t *j) {
	json_t *list = json_list(j, "cells"), *c;
	Table t = { .n_cols = 7 };
	size_t i;
	int r;

	(void)resp;
	table_cell(&t, "NAME");
	table_cell(&t, "STATE");
	table_cell(&t, "BACKEND");
	table_cell(&t, "CPUS");
	table_cell(&t, "RESTARTS");
	table_cell(&t, "UPTIME");
	table_cell(&t, "LAST-FAILURE");
	json_array_foreach(list, i, c) {
		json_t *cpus = json_object_get(c, "cpus") ?: json_object_get(json_object_get(c, "spec"), "cpus");
		json_t *hb = json_object_get(c, "heartbeat"), *lf = json_object_get(c, "last_failure");
		json_t *uptime = json_object_get(c, "uptime_ms") ?: json_object_get(hb, "uptime_ms");
		const char *state = jstr(c, "state");
		bool up = streq(state, "running") || streq(state, "degraded");
		char b1[128], b2[32], b3[32];

		table_cell(&t, "%s", dash(jstr(c, "name")));
		table_cell(&t, "%s", dash(state));
		table_cell(&t, "%s", dash(jstr(c, "backend")));
		table_cell(&t, "%s", format_list(cpus, NULL, ",", b1, sizeof b1));
		table_cell(&t, "%lld", (long long)json_integer_value(json_object_get(c, "restarts")));
		table_cell(&t, "%s", up ? format_json_ms(uptime, b2, sizeof b2) : "-");
		if (json_is_object(lf) && isfinite(age_ms(jstr(lf, "at"))))
			table_cell(&t, "%s %s ago", dash(jstr(lf, "kind")), format_ms(age_ms(jstr(lf, "at")), b3, sizeof b3));
		else
			table_cell(&t, "%s", json_is_object(lf) ? dash(jstr(lf, "kind")) : "-");
	}
	r = table_print(&t);
	table_done(&t);
	return r < 0 ? oom() : EXIT_OK;
}

static void show_cell_spec(json_t *spec) {
	json_t *mem = json_object_get(spec, "memory"), *images = json_object_get(spec, "images");
	json_t *linux_ = json_object_get(spec, "linux"), *health = json_object_get(spec, "health"), *v;
	char buf[512], d1[32], d2[32], d3[32];
	size_t i;

	kv("backend", "%s", dash(jstr(spec, "backend")));
	kv("cpus", "%s", format_list(json_object_get(spec, "cpus"), NULL, ",", buf, sizeof buf));
	json_array_foreach(mem, i, v) kv(i ? "" : "memory", "%s %s at %s", dash(jstr(v, "name")),
	                                   format_size(json_object_get(v, "size"), d1, sizeof d1),
	                                   dash(jstr(v, "phys_start")));
	json_array_foreach(images, i, v) kv(i ? "" : "images", "%s at %s", dash(jstr(v, "file")), dash(jstr(v, "address")));
	if (json_is_object(linux_))
		kv("linux", "kernel %s, initrd %s, cmdline \"%s\"", dash(jstr(linux_, "kernel")), dash(jstr(linux_, "initrd")),
		   jstr(linux_, "cmdline") ? jstr(linux_, "cmdline") : "");
	if (jstr(spec, "args"))
		kv("args", "%s", jstr(spec, "args"));
	if (json_is_boolean(json_object_get(spec, "autostart")))
		kv("autostart", "%s", json_is_true(json_object_get(spec, "autostart")) ? "yes" : "no");
	if (json_is_true(json_object_get(spec, "allow_inject")))
		kv("allow inject", "yes");
	if (json_is_object(health))
		kv("health check", "every %s, timeout %s, boot timeout %s",
		   format_json_ms(json_object_get(health, "period_ms"), d1, sizeof d1),
		   format_json_ms(json_object_get(health, "timeout_ms"), d2, sizeof d2),
		   format_json_ms(json_object_get(health, "boot_timeout_ms"), d3, sizeof d3));
}

static void show_cell_health(json_t *c) {
	json_t *hb = json_object_get(c, "heartbeat"), *lf = json_object_get(c, "last_failure");
	json_t *t = json_object_get(c, "timings"), *f = json_object_get(c, "failures"), *hv = json_object_get(c, "hypervisor");
	json_t *v;
	const char *k;
	char buf[256], d1[32], d2[32];
	size_t off = 0;

	kv("restarts", "%lld", (long long)json_integer_value(json_object_get(c, "restarts")));
	if (json_is_object(hb) && json_integer_value(json_object_get(hb, "seq")) == 0)
		kv("heartbeat", "none yet");
	else if (json_is_object(hb))
		kv("heartbeat", "#%lld, %s ago, inmate %s, up %s", (long long)json_integer_value(json_object_get(hb, "seq")),
		   format_json_ms(json_object_get(hb, "age_ms"), d1, sizeof d1), dash(jstr(hb, "inmate_state")),
		   format_json_ms(json_object_get(hb, "uptime_ms"), d2, sizeof d2));
	if (json_is_object(t))
		kv("boot", "%s", format_json_ms(json_object_get(t, "boot_ms"), d1, sizeof d1));
	buf[0] = 0;
	json_object_foreach(f, k, v) {
		int w;
		if (json_integer_value(v) == 0)
			continue;
		w = snprintf(buf + off, sizeof buf - off, "%s%s %lld", off ? ", " : "", k, (long long)json_integer_value(v));
		if (w < 0 || (size_t)w >= sizeof buf - off)
			break;
		off += (size_t)w;
	}
	if (json_is_object(f))
		kv("failures", "%s", off ? buf : "none");
	if (json_is_object(lf))
		kv("last failure", "%s at %s: %s", dash(jstr(lf, "kind")), dash(jstr(lf, "at")), dash(jstr(lf, "reason")));
	else
		kv("last failure", "none");
	if (json_is_object(hv))
		kv("hypervisor", "%s, pid %lld, %lld boots, %lld exits", dash(jstr(hv, "state")),
		   (long long)json_integer_value(json_object_get(hv, "pid")),
		   (long long)json_integer_value(json_object_get(hv, "boots")),
		   (long long)json_integer_value(json_object_get(json_object_get(hv, "exits"), "total")));
}

static int show_cell(const Response *resp, json_t *c) {
	json_t *events = json_object_get(c, "events"), *e;
	json_t *spec = json_object_get(c, "spec");
	char rev[32];
	size_t i, n = json_array_size(events);

	kv("name", "%s", dash(jstr(c, "name")));
	kv("state", "%s", dash(jstr(c, "state")));
	kv("revision", "%s", dash(revision_of(resp, c, rev, sizeof rev)));
	if (json_is_object(spec))
		show_cell_spec(spec);
	else
		kv("backend", "%s", dash(jstr(c, "backend")));
	show_cell_health(c);
	if (n == 0)
		return EXIT_OK;
	printf("recent events:\n");
	/* The newest ten; the daemon keeps more (--json). */
	for (i = n > 10 ? n - 10 : 0; i < n; i++) {
		e = json_array_get(events, i);
		printf("  #%-5lld %s  %-9s %-9s %s\n", (long long)json_integer_value(json_object_get(e, "id")),
		       dash(jstr(e, "at")), dash(jstr(e, "type")), dash(jstr(e, "state")), dash(jstr(e, "reason")));
	}
	return EXIT_OK;
}

static int show_images(const Response *resp, json_t *j) {
	json_t *list = json_list(j, "images"), *v;
	Table t = { .n_cols = 3 };
	size_t i;
	int r;

	(void)resp;
	table_cell(&t, "NAME");
	table_cell(&t, "SIZE");
	table_cell(&t, "SHA256");
	json_array_foreach(list, i, v) {
		table_cell(&t, "%s", dash(jstr(v, "name")));
		table_cell(&t, "%lld", (long long)json_integer_value(json_object_get(v, "size")));
		table_cell(&t, "%s", dash(jstr(v, "sha256")));
	}
	r = table_print(&t);
	table_done(&t);
	return r < 0 ? oom() : EXIT_OK;
}

static int show_operations(const Response *resp, json_t *j) {
	json_t *list = json_list(j, "operations"), *v;
	Table t = { .n_cols = 5 };
	size_t i;
	int r;

	(void)resp;
	table_cell(&t, "ID");
	table_cell(&t, "KIND");
	table_cell(&t, "CELL");
	table_cell(&t, "PHASE");
	table_cell(&t, "TOTAL");
	json_array_foreach(list, i, v) {
		char d[32];
		table_cell(&t, "%s", dash(jstr(v, "operation")));
		table_cell(&t, "%s", dash(jstr(v, "kind")));
		table_cell(&t, "%s", dash(jstr(v, "cell")));
		table_cell(&t, "%s", dash(jstr(v, "phase")));
		table_cell(&t, "%s", format_json_ms(json_object_get(json_object_get(v, "timings_ms"), "total"), d, sizeof d));
	}
	r = table_print(&t);
	table_done(&t);
	return r < 0 ? oom() : EXIT_OK;
}

static int show_hypervisor(const Response *resp, json_t *j) {
	json_t *backends = json_object_get(j, "backends"), *b, *sharing = json_object_get(j, "cpu_sharing");
	char buf[512];
	size_t i, off = 0;

	(void)resp;
	kv("state", "%s", dash(jstr(j, "state")));
	buf[0] = 0;
	json_array_foreach(backends, i, b) {
		json_t *avail = json_object_get(b, "available");
		int w = snprintf(buf + off, sizeof buf - off, "%s%s%s", i ? ", " : "",
		                 json_is_string(b) ? json_string_value(b) : dash(jstr(b, "kind")),
		                 json_is_boolean(avail) ? (json_is_true(avail) ? " (available)" : " (unavailable)") : "");
		if (w < 0 || (size_t)w >= sizeof buf - off)
			break;
		off += (size_t)w;
	}
	kv("backends", "%s", off ? buf : "-");
	if (json_is_boolean(sharing))
		kv("cpu sharing", "%s", json_is_true(sharing) ? "on (development only)" : "off");
	kv("root cpus", "%s", format_list(json_object_get(j, "root_cpus"), NULL, ",", buf, sizeof buf));
	kv("cells", "%s", format_list(json_object_get(j, "cells"), "name", ", ", buf, sizeof buf));
	return EXIT_OK;
}

/* ---- commands ------------------------------------------------------------- */

static int cmd_health(const Options *o, const char *verb, char **args) {
	(void)verb, (void)args;
	return get_and_show(o, "/health", show_health);
}

static int cmd_cells(const Options *o, const char *verb, char **args) {
	(void)verb, (void)args;
	return get_and_show(o, "/cells", show_cells);
}

static int cmd_metrics(const Options *o, const char *verb, char **args) {
	(void)verb, (void)args;
	return get_text(o, "/metrics");
}

static int cmd_cell_show(const Options *o, const char *verb, char **args) {
	_cleanup_free_ char *path = path_make("/cells/", args[0], NULL);

	(void)verb;
	return path ? get_and_show(o, path, show_cell) : oom();
}

static int cmd_cell_images(const Options *o, const char *verb, char **args) {
	_cleanup_free_ char *path = path_make("/cells/", args[0], "/images");

	(void)verb;
	return path ? get_and_show(o, path, show_images) : oom();
}

static int cmd_operations(const Options *o, const char *verb, char **args) {
	(void)verb, (void)args;
	return get_and_show(o, "/operations", show_operations);
}

static int cmd_hypervisor_show(const Options *o, const char *verb, char **args) {
	(void)verb, (void)args;
	return get_and_show(o, "/hypervisor", show_hypervisor);
}

static int cmd_cell_console(const Options *o, const char *verb, char **args) {
	_cleanup_free_ char *path = path_make("/cells/", args[0], "/console");
	char n[24];

	(void)verb;
	if (!path)
		return oom();
	if (o->seen & OPT_BYTES) {
		snprintf(n, sizeof n, "%ld", o->bytes);
		if (path_add_query(&path, "bytes", n) < 0)
			return oom();
	}
	return get_text(o, path);
}

static int cmd_cell_action(const Options *o, const char *verb, char **args) {
	_cleanup_free_ char *path = NULL;
	char label[160], suffix[16];
	Request q = { .method = "POST" };

	snprintf(suffix, sizeof suffix, "/%s", verb);
	path = path_make("/cells/", args[0], suffix);
	if (!path)
		return oom();
	snprintf(label, sizeof label, "%s %s", verb, args[0]);
	q.path = path;
	return run_mutation(o, &q, label, print_accepted, NULL);
}

static int cmd_hypervisor_action(const Options *o, const char *verb, char **args) {
	_cleanup_free_ char *path = path_make("/hypervisor/", verb, NULL);
	char label[64];
	Request q = { .method = "POST" };

	(void)args;
	if (!path)
		return oom();
	snprintf(label, sizeof label, "hypervisor-%s", verb);
	q.path = path;
	return run_mutation(o, &q, label, print_accepted, NULL);
}

static int print_injected(const Options *o, const Response *resp, json_t *j, const char *label, void *userdata) {
	(void)userdata;
	(void)label;
	if (o->json)
		print_json_text(resp->body.data, resp->body.size);
	else
		printf("injected %s into cell %s\n", dash(jstr(j, "fault")), dash(jstr(j, "cell")));
	return EXIT_OK;
}

static int cmd_cell_inject(const Options *o, const char *verb, char **args) {
	_cleanup_free_ char *path = path_make("/cells/", args[0], "/inject");
	_cleanup_(json_decrefp) json_t *body = json_pack("{s:s}", "fault", args[1]);
	_cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	char label[160];
	Request q = { .method = "POST", .content_type = "application/json" };

	(void)verb;
	if (!path || !text)
		return oom();
	snprintf(label, sizeof label, "inject %s %s", args[1], args[0]);
	q.path = path;
	q.body = text;
	q.body_size = strlen(text);
	return run_mutation(o, &q, label, print_injected, NULL);
}

static int print_spec_answer(const Options *o, const Response *resp, json_t *j, const char *label, void *userdata) {
	char rev[32];

	(void)userdata;
	if (o->json) {
		print_json_text(resp->body.data, resp->body.size);
		return EXIT_OK;
	}
	printf("%s: %s (revision %s)%s\n", label, resp->status == 201 ? "created" : "replaced",
	       dash(revision_of(resp, j, rev, sizeof rev)),
	       resp->status == 201 ? "; it is stopped" : "; it takes effect at the next start");
	return EXIT_OK;
}

static int cmd_cell_create(const Options *o, const char *verb, char **args) {
	_cleanup_(buffer_done) Buffer text = { 0 };
	_cleanup_(json_decrefp) json_t *spec = NULL;
	char label[160];
	Request q = { .method = "POST", .path = "/cells", .content_type = "application/json" };
	int r = read_spec(args[0], &text, &spec);

	(void)verb;
	if (r != EXIT_OK)
		return r;
	snprintf(label, sizeof label, "cell %s", jstr(spec, "name") ? jstr(spec, "name") : args[0]);
	q.body = text.data;
	q.body_size = text.size;
	return run_mutation(o, &q, label, print_spec_answer, NULL);
}

static int cmd_cell_replace(const Options *o, const char *verb, char **args) {
	_cleanup_(buffer_done) Buffer text = { 0 };
	_cleanup_(json_decrefp) json_t *spec = NULL;
	_cleanup_free_ char *path = NULL;
	char label[160], if_match[32];
	Request q = { .method = "PUT", .content_type = "application/json" };
	const char *name;
	int r;

	(void)verb;
	if ((o->seen & OPT_WAIT) && !o->apply) {
		fprintf(stderr, "wardenctl: cell replace: --wait needs --apply (without it nothing runs)\n");
		return EXIT_USAGE;
	}
	r = read_spec(args[0], &text, &spec);
	if (r != EXIT_OK)
		return r;
	name = jstr(spec, "name");
	if (!name || !*name) {
		fprintf(stderr, "wardenctl: %s: the spec has no \"name\"; it names the cell to replace\n", args[0]);
		return EXIT_USAGE;
	}
	if (o->if_match && if_match_value(o->if_match, if_match, sizeof if_match) == 0)
		q.if_match = if_match;
	path = path_make("/cells/", name, NULL);
	if (!path || (o->apply && path_add_query(&path, "apply", "restart") < 0))
		return oom();
	snprintf(label, sizeof label, o->apply ? "apply %s" : "cell %s", name);
	q.path = path;
	q.body = text.data;
	q.body_size = text.size;
	return run_mutation(o, &q, label, print_spec_answer, NULL);
}

static int cmd_cell_delete(const Options *o, const char *verb, char **args) {
	_cleanup_free_ char *path = path_make("/cells/", args[0], NULL);
	char label[160], if_match[32];
	Request q = { .method = "DELETE" };

	(void)verb;
	if (!path)
		return oom();
	if (o->if_match && if_match_value(o->if_match, if_match, sizeof if_match) == 0)
		q.if_match = if_match;
	snprintf(label, sizeof label, "delete %s", args[0]);
	q.path = path;
	return run_mutation(o, &q, label, print_accepted, NULL);
}

typedef struct Upload {
	const Options *o;
	char label[300];
	curl_off_t size;
	char hex[65];
} Upload;

static bool tick_upload(CURL *e, void *userdata) {
	Upload *u = userdata;
	curl_off_t sent = 0;

	if (!u->o->stderr_tty || u->size <= 0)
		return true;
	curl_easy_getinfo(e, CURLINFO_SIZE_UPLOAD_T, &sent);
	fprintf(stderr, "\r\033[Kupload %s: %3d%% of %lld bytes", u->label, (int)(sent * 100 / u->size),
	        (long long)u->size);
	return true;
}

static int print_uploaded(const Options *o, const Response *resp, json_t *j, const char *label, void *userdata) {
	const char *sha = jstr(j, "sha256");
	const Upload *u = userdata;

	clear_progress_line(o);
	if (sha && strcasecmp(sha, u->hex) != 0) {
		fprintf(stderr, "wardenctl: the daemon stored sha256 %s, but the file's is %s\n", sha, u->hex);
		return EXIT_REFUSED;
	}
	if (o->json)
		print_json_text(resp->body.data, resp->body.size);
	else
		printf("upload %s: %s, %lld bytes, sha256 %s\n", label, resp->status == 201 ? "new" : "replaced",
		       (long long)(json_is_integer(json_object_get(j, "size")) ? json_integer_value(json_object_get(j, "size"))
		                                                               : u->size),
		       u->hex);
	return EXIT_OK;
}

static bool image_name_valid(const char *s) {
	size_t n = strlen(s);

	if (n == 0 || n > 255 || streq(s, ".") || streq(s, "..") || strchr(s, '/'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

/* Opens FILE for an upload: 0, or a negative errno (-EINVAL: not a regular file). */
static int open_regular(const char *file, FILE **ret, curl_off_t *ret_size) {
	_cleanup_fclose_ FILE *f = fopen(file, "re");
	struct stat st;

	if (!f || fstat(fileno(f), &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	*ret_size = st.st_size;
	*ret = TAKE_PTR(f);
	return 0;
}

static int cmd_cell_upload(const Options *o, const char *verb, char **args) {
	const char *name = args[0], *file = args[1], *slash = strrchr(file, '/');
	const char *image = o->as ? o->as : slash ? slash + 1 : file;
	_cleanup_fclose_ FILE *f = NULL;
	_cleanup_free_ char *images = NULL, *path = NULL, *digest = NULL;
	uint8_t sha[SHA256_SIZE];
	Upload u = { .o = o };
	Request q = { .method = "PUT", .content_type = "application/octet-stream", .tick = tick_upload,
		      .tick_userdata = &u };
	int r;

	(void)verb;
	if (!image_name_valid(image)) {
		fprintf(stderr, "wardenctl: \"%s\" is not an image name (printable, no '/'; use --as)\n", image);
		return EXIT_USAGE;
	}
	r = open_regular(file, &f, &u.size);
	if (r == 0)
		r = sha256_file(f, sha);
	if (r < 0) {
		fprintf(stderr, "wardenctl: %s: %s\n", file, r == -EINVAL ? "not a regular file" : strerror(-r));
		return EXIT_USAGE;
	}
	images = path_make("/cells/", name, "/images/");
	path = images ? path_make(images, image, NULL) : NULL;
	if (!path || digest_strings(sha, &digest, u.hex) < 0)
		return oom();
	snprintf(u.label, sizeof u.label, "%s/%s", name, image);
	q.path = path;
	q.upload = f;
	q.upload_size = u.size;
	q.content_digest = digest;
	r = run_mutation(o, &q, u.label, print_uploaded, &u);
	if (ferror(f)) {
		fprintf(stderr, "wardenctl: %s: reading failed during the upload\n", file);
		return EXIT_USAGE;
	}
	return r;
}

static int cmd_operation_show(const Options *o, const char *verb, char **args) {
	_cleanup_(response_done) Response resp = { 0 };
	_cleanup_(json_decrefp) json_t *j = NULL;
	_cleanup_free_ char *path = path_make("/operations/", args[0], NULL);
	char label[160];
	Progress p;
	Request q = { .method = "GET" };
	int r;

	(void)verb;
	if (!path)
		return oom();
	if (o->seen & OPT_WAIT) {
		char w[16];
		q.hold_s = fmin(ceil(o->wait_s), SERVER_MAX_WAIT_S);
		snprintf(w, sizeof w, "%.0f", q.hold_s);
		if (path_add_query(&path, "wait", w) < 0)
			return oom();
	}
	snprintf(label, sizeof label, "operation %s", args[0]);
	progress_begin(&p, o, label);
	q.path = path;
	q.tick = tick_progress;
	q.tick_userdata = &p;
	r = request_run(o, &q, &resp);
	if (r == EXIT_OK)
		r = parse_json_answer(&resp, &j);
	if (r != EXIT_OK) {
		progress_abort(&p);
		return r;
	}
	return operation_finish(o, &p, p.start_ns + (uint64_t)(o->wait_s * 1e9), &resp.body, &j, true);
}

/* ---- events --------------------------------------------------------------- */

typedef struct EventStream {
	const Options *o;
	Buffer line;
	Buffer data;
	char event[64];
	char id[64];      /* the SSE "last event ID" while reading */
	char resume[64];  /* id of the last complete event: where to resume */
	uint64_t started_ns;
	uint64_t activity_ns; /* 0 until the answer's headers arrived */
	unsigned received;
	bool dead;        /* connected, but silent for too long */
	bool timed_out;   /* no answer at all */
	bool broken;      /* out of memory or an overlong line */
} EventStream;

static void event_stream_done(EventStream *es) {
	buffer_done(&es->line);
	buffer_done(&es->data);
}

static void print_event_human(const char *id, const char *type, json_t *d, const char *raw) {
	char buf[512], label[160];

	if (streq(type, "state") && jstr(d, "previous"))
		snprintf(buf, sizeof buf, "%s: %s -> %s: %s", dash(jstr(d, "cell")), jstr(d, "previous"),
		         dash(jstr(d, "state")), dash(jstr(d, "reason")));
	else if (streq(type, "state"))
		snprintf(buf, sizeof buf, "%s: %s: %s", dash(jstr(d, "cell")), dash(jstr(d, "state")), dash(jstr(d, "reason")));
	else if (streq(type, "failure"))
		snprintf(buf, sizeof buf, "%s: %s: %s (action %s)", dash(jstr(d, "cell")), dash(jstr(d, "kind")),
		         dash(jstr(d, "reason")), dash(jstr(d, "action")));
	else if (streq(type, "operation")) {
		op_label(d, "-", label, sizeof label);
		op_summary(d, label, buf, sizeof buf);
		snprintf(buf + strlen(buf), sizeof buf - strlen(buf), " [%s]", dash(jstr(d, "operation")));
	} else if (streq(type, "spec"))
		snprintf(buf, sizeof buf, "%s: spec %s, revision %lld", dash(jstr(d, "cell")), dash(jstr(d, "change")),
		         (long long)json_integer_value(json_object_get(d, "revision")));
	else if (streq(type, "image"))
		snprintf(buf, sizeof buf, "%s: image %s %s (%lld bytes, sha256 %.16s…)", dash(jstr(d, "cell")),
		         dash(jstr(d, "name")), dash(jstr(d, "change")),
		         (long long)json_integer_value(json_object_get(d, "size")), dash(jstr(d, "sha256")));
	else
		snprintf(buf, sizeof buf, "%s", raw);
	printf("%-6s %-9s %s\n", dash(id), type, buf);
}

/* One JSON document a line: {"id": …, "event": "…", "data": <as sent>}. */
static void print_event_json(const char *id, const char *type, json_t *d, const char *raw) {
	_cleanup_(json_decrefp) json_t *jid = NULL, *jtype = json_string(type);
	_cleanup_free_ char *sid = NULL, *stype = NULL, *sdata = NULL;
	size_t l = strlen(id);

	jid = l && l < 19 && strspn(id, "0123456789") == l ? json_integer(strtoll(id, NULL, 10)) : json_string(id);
	sid = jid ? json_dumps(jid, JSON_ENCODE_ANY) : NULL;
	stype = jtype ? json_dumps(jtype, JSON_ENCODE_ANY) : NULL;
	if (!d) {
		_cleanup_(json_decrefp) json_t *s = json_string(raw);
		sdata = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
	}
	printf("{\"id\": %s, \"event\": %s, \"data\": %s}\n", sid ? sid : "null", stype ? stype : "null",
	       d ? raw : sdata ? sdata : "null");
}

static void event_dispatch(EventStream *es) {
	_cleanup_(json_decrefp) json_t *d = NULL;
	const char *type = es->event[0] ? es->event : "message";

	if (es->data.size == 0) {
		es->event[0] = 0;
		return;
	}
	es->data.data[--es->data.size] = 0; /* the last "\n" */
	d = json_loadb(es->data.data, es->data.size, 0, NULL);
	if (es->o->json)
		print_event_json(es->id, type, d, es->data.data);
	else
		print_event_human(es->id, type, d, es->data.data);
	fflush(stdout);
	snprintf(es->resume, sizeof es->resume, "%s", es->id);
	es->received++;
	es->event[0] = 0;
	buffer_done(&es->data);
}

static void event_line(EventStream *es, char *line) {
	char *colon = strchr(line, ':'), *value = "";

	if (line[0] == 0) {
		event_dispatch(es);
		return;
	}
	if (colon == line) /* a comment: the keepalive */
		return;
	if (colon) {
		*colon = 0;
		value = colon[1] == ' ' ? colon + 2 : colon + 1;
	}
	if (streq(line, "event"))
		snprintf(es->event, sizeof es->event, "%s", value);
	else if (streq(line, "id"))
		snprintf(es->id, sizeof es->id, "%s", value);
	else if (streq(line, "data")) {
		if (buffer_append(&es->data, value, strlen(value)) < 0 || buffer_append(&es->data, "\n", 1) < 0)
			es->broken = true;
	}
}

static size_t on_event_data(const char *p, size_t n, void *userdata) {
	EventStream *es = userdata;

	es->activity_ns = now_ns(CLOCK_MONOTONIC);
	for (size_t i = 0; i < n && !es->broken; i++) {
		if (p[i] != '\n') {
			if (es->line.size >= SSE_LINE_MAX || buffer_append(&es->line, &p[i], 1) < 0)
				es->broken = true;
			continue;
		}
		if (es->line.size && es->line.data[es->line.size - 1] == '\r')
			es->line.data[--es->line.size] = 0;
		event_line(es, es->line.data ? es->line.data : (char[]){ 0 });
		es->line.size = 0;
		if (es->line.data)
			es->line.data[0] = 0;
	}
	return es->broken ? 0 : n;
}

static bool tick_events(CURL *e, void *userdata) {
	EventStream *es = userdata;
	uint64_t now = now_ns(CLOCK_MONOTONIC);
	long status = 0;

	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	if (status == 0) {
		es->timed_out = now - es->started_ns > (uint64_t)(es->o->timeout_s * 1e9);
		return !es->timed_out;
	}
	if (status < 200 || status > 299)
		return true;
	if (!es->activity_ns)
		es->activity_ns = now;
	if (!es->o->follow)
		return now - es->activity_ns < EVENTS_IDLE_NS;
	es->dead = now - es->activity_ns > EVENTS_DEAD_NS;
	return !es->dead;
}

/* One connection. EXIT_OK when it ended (idle, closed, or dead); *why says
 * why when it is worth reconnecting; otherwise an exit code. */
static int events_connect(const Options *o, EventStream *es, Response *resp, const char **why) {
	Request q = { .method = "GET", .path = "/events", .accept = "text/event-stream, application/problem+json",
		      .last_event_id = es->resume, .stream = true, .on_data = on_event_data, .data_userdata = es,
		      .tick = tick_events, .tick_userdata = es };
	int r;

	es->line.size = 0;
	buffer_done(&es->data);
	es->event[0] = 0;
	es->started_ns = now_ns(CLOCK_MONOTONIC);
	es->activity_ns = 0;
	es->dead = es->timed_out = false;
	*why = NULL;
	r = request_once(o, &q, resp);
	if (es->broken) {
		fprintf(stderr, "wardenctl: event stream: a line longer than %d bytes, or out of memory\n", SSE_LINE_MAX);
		return EXIT_REFUSED;
	}
	if (r == -EIO && es->timed_out) {
		resp->code = CURLE_OPERATION_TIMEDOUT;
		snprintf(resp->error, sizeof resp->error, "no answer within %.0f s", o->timeout_s);
	}
	if (r == -EIO) {
		if (!transient(resp->code))
			return report_unreachable(o, &q, resp);
		*why = resp->error;
		return EXIT_OK;
	}
	if (r < 0)
		return oom();
	if (resp->status < 200 || resp->status > 299) {
		if (!o->follow || resp->status < 500)
			return report_http_error(o, resp);
		*why = "the daemon is not ready";
		return EXIT_OK;
	}
	if (o->follow)
		*why = es->dead ? "no keepalive for 45 s" : "the daemon closed the stream";
	return EXIT_OK;
}

static int cmd_events(const Options *o, const char *verb, char **args) {
	_cleanup_(event_stream_done) EventStream es = { .o = o };
	unsigned failures = 0;

	(void)verb, (void)args;
	/* Without --since, everything the daemon still holds, like tail(1). */
	snprintf(es.resume, sizeof es.resume, "%s", o->since ? o->since : "0");
	for (;;) {
		_cleanup_(response_done) Response resp = { 0 };
		unsigned received = es.received, delay;
		const char *why;
		int r = events_connect(o, &es, &resp, &why);

		if (r != EXIT_OK || !why)
			return r;
		failures = es.received > received ? 1 : failures + 1;
		if (!o->follow && failures >= MAX_ATTEMPTS) {
			Request q = { .method = "GET", .path = "/events" };
			return report_unreachable(o, &q, &resp);
		}
		delay = failures > 5 ? EVENTS_BACKOFF_MAX_S : 1u << (failures - 1);
		delay = delay > EVENTS_BACKOFF_MAX_S ? EVENTS_BACKOFF_MAX_S : delay;
		fprintf(stderr, "wardenctl: event stream: %s; reconnecting in %u s after event %s\n", why, delay,
		        es.resume);
		sleep_s(delay);
	}
}

/* ---- the command line ----------------------------------------------------- */

static const Command commands[] = {
	{ "health", NULL, 0, 0, 0, cmd_health },
	{ "cells", NULL, 0, 0, 0, cmd_cells },
	{ "cell", "show", 1, 1, 0, cmd_cell_show },
	{ "cell", "start", 1, 1, OPT_WAIT | OPT_KEY, cmd_cell_action },
	{ "cell", "stop", 1, 1, OPT_WAIT | OPT_KEY, cmd_cell_action },
	{ "cell", "restart", 1, 1, OPT_WAIT | OPT_KEY, cmd_cell_action },
	{ "cell", "shutdown", 1, 1, OPT_WAIT | OPT_KEY, cmd_cell_action },
	{ "cell", "create", 1, 1, OPT_KEY, cmd_cell_create },
	{ "cell", "replace", 1, 1, OPT_IF_MATCH | OPT_APPLY | OPT_WAIT | OPT_KEY, cmd_cell_replace },
	{ "cell", "delete", 1, 1, OPT_IF_MATCH | OPT_WAIT | OPT_KEY, cmd_cell_delete },
	{ "cell", "upload", 2, 2, OPT_AS | OPT_KEY, cmd_cell_upload },
	{ "cell", "images", 1, 1, 0, cmd_cell_images },
	{ "cell", "inject", 2, 2, OPT_KEY, cmd_cell_inject },
	{ "cell", "console", 1, 1, OPT_BYTES, cmd_cell_console },
	{ "operation", "show", 1, 1, OPT_WAIT, cmd_operation_show },
	{ "operations", NULL, 0, 0, 0, cmd_operations },
	{ "events", NULL, 0, 0, OPT_FOLLOW | OPT_SINCE, cmd_events },
	{ "hypervisor", "show", 0, 0, 0, cmd_hypervisor_show },
	{ "hypervisor", "enable", 0, 0, OPT_WAIT | OPT_KEY, cmd_hypervisor_action },
	{ "hypervisor", "disable", 0, 0, OPT_WAIT | OPT_KEY, cmd_hypervisor_action },
	{ "hypervisor", "restart", 0, 0, OPT_WAIT | OPT_KEY, cmd_hypervisor_action },
	{ "hypervisor", NULL, 0, 0, 0, cmd_hypervisor_show },
	{ "metrics", NULL, 0, 0, 0, cmd_metrics },
};

typedef enum OptionArg {
	ARG_NONE,
	ARG_REQUIRED,
	ARG_OPTIONAL_NUMBER, /* --wait, --wait=S or --wait S */
} OptionArg;

typedef enum OptionId {
	ID_SOCKET,
	ID_URL,
	ID_TOKEN_FILE,
	ID_CACERT,
	ID_JSON,
	ID_TIMEOUT,
	ID_HELP,
	ID_VERSION,
	ID_WAIT,
	ID_KEY,
	ID_IF_MATCH,
	ID_APPLY,
	ID_AS,
	ID_BYTES,
	ID_FOLLOW,
	ID_SINCE,
} OptionId;

typedef struct OptionDef {
	const char *name;
	char short_name;
	OptionArg arg;
	OptionId id;
	unsigned flag; /* CommandOption; 0 for the global options */
} OptionDef;

static const OptionDef option_defs[] = {
	{ "socket", 's', ARG_REQUIRED, ID_SOCKET, 0 },
	{ "url", 'u', ARG_REQUIRED, ID_URL, 0 },
	{ "token-file", 0, ARG_REQUIRED, ID_TOKEN_FILE, 0 },
	{ "cacert", 0, ARG_REQUIRED, ID_CACERT, 0 },
	{ "json", 'j', ARG_NONE, ID_JSON, 0 },
	{ "timeout", 0, ARG_REQUIRED, ID_TIMEOUT, 0 },
	{ "help", 'h', ARG_NONE, ID_HELP, 0 },
	{ "version", 0, ARG_NONE, ID_VERSION, 0 },
	{ "wait", 0, ARG_OPTIONAL_NUMBER, ID_WAIT, OPT_WAIT },
	{ "idempotency-key", 0, ARG_REQUIRED, ID_KEY, OPT_KEY },
	{ "if-match", 0, ARG_REQUIRED, ID_IF_MATCH, OPT_IF_MATCH },
	{ "apply", 0, ARG_NONE, ID_APPLY, OPT_APPLY },
	{ "as", 0, ARG_REQUIRED, ID_AS, OPT_AS },
	{ "bytes", 0, ARG_REQUIRED, ID_BYTES, OPT_BYTES },
	{ "follow", 'f', ARG_NONE, ID_FOLLOW, OPT_FOLLOW },
	{ "since", 0, ARG_REQUIRED, ID_SINCE, OPT_SINCE },
};

static void usage(FILE *f) {
	fputs("Usage: wardenctl [--socket PATH | --url URL [--token-file F] [--cacert F]] [--json] [--timeout S]\n"
	      "                 COMMAND\n"
	      "\n"
	      "Operate wardend, the cell supervisor, through its HTTP API.\n"
	      "\n"
	      "Commands:\n"
	      "  health                                   liveness and a summary\n"
	      "  cells                                    all cells, one line each\n"
	      "  cell show NAME                           one cell: revision, spec, health, events\n"
	      "  cell start|stop|restart|shutdown NAME [--wait [S]] [--idempotency-key K]\n"
	      "  cell create FILE [--idempotency-key K]   create a cell from a JSON spec (FILE \"-\": stdin)\n"
	      "  cell replace FILE [--if-match REV] [--apply] [--wait [S]] [--idempotency-key K]\n"
	      "                                           replace the spec of the cell FILE names\n"
	      "  cell delete NAME [--if-match REV] [--wait [S]] [--idempotency-key K]\n"
	      "  cell upload NAME FILE [--as IMAGE_NAME] [--idempotency-key K]\n"
	      "                                           upload an image, checked by its SHA-256\n"
	      "  cell images NAME                         the images uploaded to a cell\n"
	      "  cell inject NAME FAULT [--idempotency-key K]\n"
	      "                                           FAULT: hang, panic, crash, exit or stall\n"
	      "  cell console NAME [--bytes N]            the tail of the console (default 4096 bytes)\n"
	      "  operation show ID [--wait [S]]           one operation\n"
	      "  operations                               the newest operations\n"
	      "  events [--follow] [--since ID]           the event stream\n"
	      "  hypervisor [show]                        state, backends, cells\n"
	      "  hypervisor enable|disable|restart [--wait [S]] [--idempotency-key K]\n"
	      "  metrics                                  Prometheus text\n"
	      "\n"
	      "Options:\n"
	      "  -s --socket PATH        the daemon's unix socket (default " DEFAULT_SOCKET ")\n"
	      "  -u --url URL            a TCP listener instead: http://HOST:PORT or https://HOST:PORT\n"
	      "     --token-file F       bearer token (first line of F) for TCP listeners\n"
	      "     --cacert F           CA certificates to verify an https:// daemon\n"
	      "  -j --json               print the daemon's JSON (events: one object a line)\n"
	      "     --timeout S          seconds to wait for an answer, beyond --wait (default 30)\n"
	      "     --wait [S]           wait until the operation ends, at most S seconds (default 60)\n"
	      "     --idempotency-key K  key of a mutation (default: a random one); reuse it to retry\n"
	      "                          a mutation whose outcome you did not learn\n"
	      "     --if-match REV       only if the cell's revision is still REV (a number, or *)\n"
	      "     --apply              replace: restart a running cell with the new spec at once\n"
	      "     --as IMAGE_NAME      upload: the image's name (default: FILE's base name)\n"
	      "     --bytes N            console: bytes of the tail (at most 65536)\n"
	      "  -f --follow             events: keep printing; reconnect when the stream drops\n"
	      "     --since ID           events: only events after ID (default: all the daemon holds)\n"
	      "  -h --help               this help\n"
	      "     --version            the version\n"
	      "\n"
	      "Environment: WARDEN_SOCKET, WARDEN_URL and WARDEN_TOKEN_FILE set the defaults of\n"
	      "--socket, --url and --token-file.\n"
	      "\n"
	      "Every mutation sends an Idempotency-Key; when the connection fails or times out it is\n"
	      "sent again with the same key, up to 3 times, and the daemon runs it at most once.\n"
	      "\n"
	      "Exit codes:\n"
	      "  0  success\n"
	      "  1  the daemon refused (4xx, 5xx), the operation failed or did not end within --wait\n"
	      "  2  usage error: bad arguments, unreadable file\n"
	      "  3  the daemon could not be reached, after the retries\n"
	      "  4  not found (404)\n"
	      "  5  conflict or precondition failed (409, 412)\n"
	      "  6  authentication or authorization refused (401, 403)\n",
	      f);
}

static bool parse_number(const char *s, double min, double max, double *ret) {
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < min || v > max)
		return false;
	*ret = v;
	return true;
}

static int apply_option(Options *o, const OptionDef *d, const char *value) {
	double v;

	o->seen |= d->flag;
	switch (d->id) {
	case ID_SOCKET: o->socket = value; break;
	case ID_URL:
		if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0) {
			fprintf(stderr, "wardenctl: --url %s: expected http://… or https://…\n", value);
			return -EINVAL;
		}
		o->url = value;
		break;
	case ID_TOKEN_FILE: o->token_file = value; break;
	case ID_CACERT: o->cacert = value; break;
	case ID_JSON: o->json = true; break;
	case ID_HELP: o->help = true; break;
	case ID_VERSION: o->version = true; break;
	case ID_APPLY: o->apply = true; break;
	case ID_FOLLOW: o->follow = true; break;
	case ID_AS: o->as = value; break;
	case ID_TIMEOUT:
		if (!parse_number(value, 0.001, 86400, &o->timeout_s)) {
			fprintf(stderr, "wardenctl: --timeout %s: expected seconds, more than 0\n", value);
			return -EINVAL;
		}
		break;
	case ID_WAIT:
		o->wait_s = DEFAULT_WAIT_S;
		if (value && !parse_number(value, 0, 86400, &o->wait_s)) {
			fprintf(stderr, "wardenctl: --wait %s: expected seconds\n", value);
			return -EINVAL;
		}
		break;
	case ID_KEY:
		if (!key_valid(value)) {
			fprintf(stderr, "wardenctl: --idempotency-key: 1 to %d printable ASCII characters\n", KEY_MAX);
			return -EINVAL;
		}
		o->idempotency_key = value;
		break;
	case ID_IF_MATCH: {
		char buf[32];
		if (if_match_value(value, buf, sizeof buf) < 0) {
			fprintf(stderr, "wardenctl: --if-match %s: expected a revision number, a quoted ETag or *\n", value);
			return -EINVAL;
		}
		o->if_match = value;
		break;
	}
	case ID_BYTES:
		if (!parse_number(value, 1, 1 << 30, &v) || v != floor(v)) {
			fprintf(stderr, "wardenctl: --bytes %s: expected a positive integer\n", value);
			return -EINVAL;
		}
		o->bytes = (long)v;
		break;
	case ID_SINCE:
		if (!key_valid(value) || strchr(value, ' ')) {
			fprintf(stderr, "wardenctl: --since %s: expected an event id\n", value);
			return -EINVAL;
		}
		o->since = value;
		break;
	}
	return 0;
}

static const OptionDef *find_option(const char *arg, const char **ret_inline) {
	*ret_inline = NULL;
	if (arg[1] != '-') {
		for (size_t i = 0; arg[2] == 0 && i < ELEMENTSOF(option_defs); i++)
			if (option_defs[i].short_name && option_defs[i].short_name == arg[1])
				return &option_defs[i];
		return NULL;
	}
	for (size_t i = 0; i < ELEMENTSOF(option_defs); i++) {
		size_t l = strlen(option_defs[i].name);
		if (strncmp(arg + 2, option_defs[i].name, l) != 0)
			continue;
		if (arg[2 + l] == '=') {
			*ret_inline = arg + 3 + l;
			return &option_defs[i];
		}
		if (arg[2 + l] == 0)
			return &option_defs[i];
	}
	return NULL;
}

/* Options may stand anywhere, before or after the command's words. */
static int parse_argv(int argc, char **argv, Options *o) {
	bool only_args = false;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *value;
		const OptionDef *d;
		double unused;

		if (only_args || a[0] != '-' || a[1] == 0) {
			if (o->n_args >= ARGS_MAX) {
				fprintf(stderr, "wardenctl: too many arguments\n");
				return -EINVAL;
			}
			o->args[o->n_args++] = argv[i];
			continue;
		}
		if (streq(a, "--")) {
			only_args = true;
			continue;
		}
		d = find_option(a, &value);
		if (!d) {
			fprintf(stderr, "wardenctl: unknown option %s\n", a);
			return -EINVAL;
		}
		if (d->arg == ARG_NONE && value) {
			fprintf(stderr, "wardenctl: --%s takes no value\n", d->name);
			return -EINVAL;
		}
		if (d->arg == ARG_REQUIRED && !value) {
			if (i + 1 >= argc) {
				fprintf(stderr, "wardenctl: --%s needs a value\n", d->name);
				return -EINVAL;
			}
			value = argv[++i];
		}
		if (d->arg == ARG_OPTIONAL_NUMBER && !value && i + 1 < argc && parse_number(argv[i + 1], 0, 86400, &unused))
			value = argv[++i];
		if (apply_option(o, d, value) < 0)
			return -EINVAL;
	}
	return 0;
}

static const Command *find_command(const Options *o) {
	const Command *word = NULL;

	if (o->n_args == 0) {
		fprintf(stderr, "wardenctl: no command\n");
		return NULL;
	}
	for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
		const Command *c = &commands[i];
		size_t words = c->verb ? 2 : 1;
		if (!streq(c->word, o->args[0]))
			continue;
		word = c;
		if (c->verb && (o->n_args < 2 || !streq(c->verb, o->args[1])))
			continue;
		if (o->n_args - words < c->min_args || o->n_args - words > c->max_args) {
			if (!c->verb && o->n_args > 1)
				continue; /* "hypervisor bogus" */
			fprintf(stderr, "wardenctl: %s%s%s: wrong number of arguments\n", c->word, c->verb ? " " : "",
			        c->verb ? c->verb : "");
			return NULL;
		}
		return c;
	}
	if (word && o->n_args > 1)
		fprintf(stderr, "wardenctl: unknown command \"%s %s\"\n", o->args[0], o->args[1]);
	else if (word)
		fprintf(stderr, "wardenctl: %s: which one? (see --help)\n", o->args[0]);
	else
		fprintf(stderr, "wardenctl: unknown command \"%s\"\n", o->args[0]);
	return NULL;
}

static int check_options(const Options *o, const Command *c) {
	for (size_t i = 0; i < ELEMENTSOF(option_defs); i++)
		if ((o->seen & option_defs[i].flag) & ~c->options) {
			fprintf(stderr, "wardenctl: --%s does not apply to \"%s%s%s\"\n", option_defs[i].name, c->word,
			        c->verb ? " " : "", c->verb ? c->verb : "");
			return -EINVAL;
		}
	return 0;
}

/* The command line wins over the environment; the socket is the default. */
static int resolve_endpoint(Options *o) {
	const char *env_url = getenv("WARDEN_URL"), *env_socket = getenv("WARDEN_SOCKET");

	if (o->socket && o->url) {
		fprintf(stderr, "wardenctl: --socket and --url exclude each other\n");
		return -EINVAL;
	}
	if (!o->token_file && getenv("WARDEN_TOKEN_FILE") && *getenv("WARDEN_TOKEN_FILE"))
		o->token_file = getenv("WARDEN_TOKEN_FILE");
	if (o->socket || o->url)
		return 0;
	env_url = env_url && *env_url ? env_url : NULL;
	env_socket = env_socket && *env_socket ? env_socket : NULL;
	if (env_url && env_socket) {
		fprintf(stderr, "wardenctl: both WARDEN_URL and WARDEN_SOCKET are set; unset one or pass --url/--socket\n");
		return -EINVAL;
	}
	if (env_url && strncmp(env_url, "http://", 7) != 0 && strncmp(env_url, "https://", 8) != 0) {
		fprintf(stderr, "wardenctl: WARDEN_URL=%s: expected http://… or https://…\n", env_url);
		return -EINVAL;
	}
	o->url = env_url;
	o->socket = env_url ? NULL : env_socket ? env_socket : DEFAULT_SOCKET;
	return 0;
}

/* The first line of the file, trimmed. */
static int read_token(const char *file, char **ret) {
	_cleanup_(buffer_done) Buffer b = { 0 };
	size_t start = 0, end;
	int r = read_file(file, TOKEN_MAX_BYTES, &b);

	if (r < 0)
		goto out;
	end = strcspn(b.data, "\r\n");
	while (start < end && (b.data[start] == ' ' || b.data[start] == '\t'))
		start++;
	while (end > start && (b.data[end - 1] == ' ' || b.data[end - 1] == '\t'))
		end--;
	r = -ENODATA;
	if (end == start)
		goto out;
	r = -EBADMSG;
	for (size_t i = start; i < end; i++)
		if (b.data[i] < 0x21 || b.data[i] > 0x7e)
			goto out;
	r = asprintf(ret, "Authorization: Bearer %.*s", (int)(end - start), b.data + start) < 0 ? -ENOMEM : 0;
out:
	if (b.data)
		explicit_bzero(b.data, b.size);
	return r;
}

static bool cleartext_remote(const char *url) {
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	bool r = false;

	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
		r = streq(scheme, "http") && !streq(host, "localhost") && strncmp(host, "127.", 4) != 0 &&
		    !streq(host, "[::1]");
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return r;
}

static int load_token(Options *o) {
	int r;

	if (!o->token_file)
		return 0;
	r = read_token(o->token_file, &o->authorization);
	if (r < 0) {
		fprintf(stderr, "wardenctl: token file %s: %s\n", o->token_file,
		        r == -ENODATA ? "empty" : r == -EBADMSG ? "the token has characters a header cannot carry" : strerror(-r));
		return r;
	}
	if (o->url && cleartext_remote(o->url))
		fprintf(stderr, "wardenctl: warning: the bearer token goes over plain http to %s; use https://\n", o->url);
	return 0;
}

static void options_done(Options *o) {
	if (o->authorization) {
		explicit_bzero(o->authorization, strlen(o->authorization));
		free(o->authorization);
	}
}

int main(int argc, char **argv) {
	_cleanup_(options_done) Options o = { .timeout_s = DEFAULT_TIMEOUT_S };
	const Command *c;
	int r;

	if (parse_argv(argc, argv, &o) < 0) {
		fprintf(stderr, "Try \"wardenctl --help\".\n");
		return EXIT_USAGE;
	}
	if (o.help) {
		usage(stdout);
		return EXIT_OK;
	}
	if (o.version) {
		printf("wardenctl %s\n", WARDEN_VERSION);
		return EXIT_OK;
	}
	c = find_command(&o);
	if (!c || check_options(&o, c) < 0 || resolve_endpoint(&o) < 0) {
		fprintf(stderr, "Try \"wardenctl --help\".\n");
		return EXIT_USAGE;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "wardenctl: cannot initialize libcurl\n");
		return EXIT_REFUSED;
	}
	if (load_token(&o) < 0) {
		curl_global_cleanup();
		return EXIT_USAGE;
	}
	o.stdout_tty = isatty(STDOUT_FILENO);
	o.stderr_tty = isatty(STDERR_FILENO);
	r = c->run(&o, c->verb, o.args + (c->verb ? 2 : 1));
	curl_global_cleanup();
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "wardenctl: writing the output failed\n");
		return r ?: EXIT_REFUSED;
	}
	return r;
}
