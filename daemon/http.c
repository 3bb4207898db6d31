/* SPDX-License-Identifier: MIT */
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <microhttpd.h>
#include <systemd/sd-event.h>

#include "log.h"
#include "macro.h"
#include "manager.h"

#define HTTP_MAX_LISTENERS 16
#define HTTP_MAX_EXTRA_HEADERS 8

typedef struct Listener {
	Http *http;
	struct MHD_Daemon *mhd;
	sd_event_source *io;
	sd_event_source *timer;
	bool is_unix;
	char name[128];
} Listener;

struct Http {
	Manager *manager;
	HttpLimits limits;
	Listener listeners[HTTP_MAX_LISTENERS];
	size_t n_listeners;
};

struct HttpRequest {
	Listener *listener;
	struct MHD_Connection *connection;
	const char *method;
	char *path;
	char *body;
	size_t body_size;
	bool body_too_large;
	bool replied;
	char *extra[HTTP_MAX_EXTRA_HEADERS][2];
	size_t n_extra;
};

static void listener_update_timer(Listener *l) {
	MHD_UNSIGNED_LONG_LONG ms;

	if (MHD_get_timeout(l->mhd, &ms) == MHD_YES) {
		sd_event_source_set_time(l->timer, now_ns(CLOCK_MONOTONIC) / NSEC_PER_USEC + ms * 1000);
		sd_event_source_set_enabled(l->timer, SD_EVENT_ONESHOT);
	} else
		sd_event_source_set_enabled(l->timer, SD_EVENT_OFF);
}

static void listener_run(Listener *l) {
	MHD_run(l->mhd);
	listener_update_timer(l);
}

static int on_listener_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	(void)s;
	(void)fd;
	(void)revents;
	listener_run(userdata);
	return 0;
}

static int on_listener_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	(void)s;
	(void)usec;
	listener_run(userdata);
	return 0;
}

static void request_free(HttpRequest *r) {
	if (!r)
		return;
	free(r->path);
	free(r->body);
	for (size_t i = 0; i < r->n_extra; i++) {
		free(r->extra[i][0]);
		free(r->extra[i][1]);
	}
	free(r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
	(void)cls;
	(void)c;
	(void)toe;
	request_free(*con_cls);
	*con_cls = NULL;
}

/* MHD hands us the path already percent-decoded; refuse what would be
 * ambiguous once decoded. */
static bool path_is_sane(const char *p) {
	if (p[0] != '/')
		return false;
	for (const char *c = p; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return false;
	return strstr(p, "//") == NULL && strstr(p, "/../") == NULL && strstr(p, "/./") == NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
	Listener *l = cls;
	HttpRequest *r = *con_cls;

	(void)version;
	if (!r) {
		const char *cl;
		r = calloc(1, sizeof *r);
		if (!r)
			return MHD_NO;
		r->listener = l;
		r->connection = connection;
		r->method = method;
		r->path = strdup(url);
		if (!r->path) {
			free(r);
			return MHD_NO;
		}
		*con_cls = r;
		/* Refuse an announced oversized body before reading it. */
		cl = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > l->http->limits.max_body_bytes) {
			r->body_too_large = true;
			http_reply_problem(r, 413, "Payload Too Large", "request body of %s bytes exceeds the limit of %zu",
			                   cl, l->http->limits.max_body_bytes);
			return MHD_YES;
		}
		return MHD_YES;
	}

	if (*upload_data_size > 0) {
		if (!r->replied && !r->body_too_large) {
			size_t n = *upload_data_size;
			if (r->body_size + n > l->http->limits.max_body_bytes) {
				r->body_too_large = true;
				free(r->body);
				r->body = NULL;
			} else {
				char *nb = realloc(r->body, r->body_size + n + 1);
				if (!nb)
					return MHD_NO;
				memcpy(nb + r->body_size, upload_data, n);
				r->body = nb;
				r->body_size += n;
				r->body[r->body_size] = 0;
			}
		}
		*upload_data_size = 0;
		return MHD_YES;
	}

	if (r->replied)
		return MHD_YES;
	if (r->body_too_large)
		return http_reply_problem(r, 413, "Payload Too Large", "request body exceeds the limit of %zu bytes",
		                          l->http->limits.max_body_bytes) < 0 ? MHD_NO : MHD_YES;
	if (!path_is_sane(r->path))
		return http_reply_problem(r, 400, "Bad Request", "malformed request path") < 0 ? MHD_NO : MHD_YES;

	api_handle(l->http->manager, r);
	if (!r->replied)
		http_reply_problem(r, 500, "Internal Server Error", "the request was not answered");
	return MHD_YES;
}

static int hexval(char c) {
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decoding that cannot hide a NUL: "%00" would cut the path short
 * silently, so it becomes DEL, which path_is_sane() refuses. */
static size_t on_unescape(void *cls, struct MHD_Connection *c, char *s) {
	char *w = s;
	(void)cls;
	(void)c;
	for (const char *p = s; *p; p++) {
		int hi, lo;
		if (*p == '%' && (hi = hexval(p[1])) >= 0 && (lo = hexval(p[2])) >= 0) {
			char v = (char)(hi * 16 + lo);
			*w++ = v ? v : 0x7f;
			p += 2;
		} else
			*w++ = *p;
	}
	*w = 0;
	return (size_t)(w - s);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
	char buf[512];
	(void)cls;
	vsnprintf(buf, sizeof buf, fmt, ap);
	buf[strcspn(buf, "\n")] = 0;
	log_debug("libmicrohttpd: %s", buf);
}

int http_new(Manager *m, const HttpLimits *limits, Http **ret) {
	Http *h = calloc(1, sizeof *h);
	if (!h)
		return -ENOMEM;
	h->manager = m;
	h->limits = *limits;
	*ret = h;
	return 0;
}

Http *http_free(Http *h) {
	if (!h)
		return NULL;
	for (size_t i = 0; i < h->n_listeners; i++) {
		Listener *l = &h->listeners[i];
		sd_event_source_disable_unref(l->io);
		sd_event_source_disable_unref(l->timer);
		if (l->mhd)
			MHD_stop_daemon(l->mhd);
	}
	free(h);
	return NULL;
}

int http_listen_fd(Http *h, int fd) {
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	const union MHD_DaemonInfo *info;
	Listener *l;
	int r;

	if (h->n_listeners >= HTTP_MAX_LISTENERS)
		return -E2BIG;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	/* MHD runs inside our loop: an accept() must never block it, and a
	 * socket passed by systemd may come blocking. */
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	l = &h->listeners[h->n_listeners];
	*l = (Listener){ .http = h, .is_unix = ss.ss_family == AF_UNIX };
	if (l->is_unix)
		snprintf(l->name, sizeof l->name, "unix:%s", ((struct sockaddr_un *)&ss)->sun_path);
	else {
		char host[64], port[16];
		if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, port, sizeof port,
		                NI_NUMERICHOST | NI_NUMERICSERV) == 0)
			snprintf(l->name, sizeof l->name, "tcp:%s:%s", host, port);
	}

	/* External epoll, no threads: MHD's epoll fd becomes one of our
	 * event sources. Suspend/resume is for requests that wait. */
	l->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL,
	                          on_request, l,
	                          MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
	                          MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)h->limits.max_header_bytes * 2,
	                          MHD_OPTION_CONNECTION_LIMIT, (unsigned)h->limits.max_connections,
	                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
	                          MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
	                          MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
	                          MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, NULL,
	                          MHD_OPTION_END);
	if (!l->mhd)
		return -EIO;
	info = MHD_get_daemon_info(l->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info) {
		MHD_stop_daemon(l->mhd);
		return -EIO;
	}
	r = sd_event_add_io(h->manager->event, &l->io, info->epoll_fd, EPOLLIN, on_listener_io, l);
	if (r >= 0)
		r = sd_event_add_time(h->manager->event, &l->timer, CLOCK_MONOTONIC, UINT64_MAX, 1000,
		                      on_listener_timer, l);
	if (r < 0) {
		sd_event_source_disable_unref(l->io);
		MHD_stop_daemon(l->mhd);
		return r;
	}
	sd_event_source_set_enabled(l->timer, SD_EVENT_OFF);
	h->n_listeners++;
	return 0;
}

static int listen_unix(const char *path) {
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;

	if (strlen(path) >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	(void)unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		return -errno;
	/* Trusted by its permissions: owner and group only. */
	if (chmod(path, 0660) < 0 || listen(fd, 64) < 0)
		return -errno;
	return TAKE_FD(fd);
}

static int listen_tcp(const char *hostport) {
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *ai = NULL;
	char host[256];
	const char *colon = strrchr(hostport, ':');
	int fd = -1, r, one = 1;

	if (!colon || (size_t)(colon - hostport) >= sizeof host)
		return -EINVAL;
	memcpy(host, hostport, colon - hostport);
	host[colon - hostport] = 0;
	/* [::1]:8080 */
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = 0;
	}
	r = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai);
	if (r != 0)
		return -EADDRNOTAVAIL;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
		r = -errno;
		close(fd);
		goto out;
	}
	r = fd;
out:
	freeaddrinfo(ai);
	return r;
}

int http_listen(Http *h, const char *spec) {
	int fd, r;

	if (strncmp(spec, "unix:", 5) == 0)
		fd = listen_unix(spec + 5);
	else if (strncmp(spec, "tcp:", 4) == 0)
		fd = listen_tcp(spec + 4);
	else
		return -EINVAL;
	if (fd < 0)
		return fd;
	r = http_listen_fd(h, fd);
	if (r < 0)
		close(fd);
	return r;
}

size_t http_n_listeners(const Http *h) {
	return h->n_listeners;
}

const char *http_listener_name(const Http *h, size_t i) {
	return i < h->n_listeners ? h->listeners[i].name : NULL;
}

const char *http_request_method(const HttpRequest *r) {
	return r->method;
}
const char *http_request_path(const HttpRequest *r) {
	return r->path;
}
const char *http_request_header(const HttpRequest *r, const char *name) {
	return MHD_lookup_connection_value(r->connection, MHD_HEADER_KIND, name);
}
const char *http_request_query(const HttpRequest *r, const char *name) {
	return MHD_lookup_connection_value(r->connection, MHD_GET_ARGUMENT_KIND, name);
}
const char *http_request_body(const HttpRequest *r, size_t *ret_size) {
	if (ret_size)
		*ret_size = r->body_size;
	return r->body ? r->body : "";
}
bool http_request_is_unix(const HttpRequest *r) {
	return r->listener->is_unix;
}

int http_reply_header(HttpRequest *r, const char *name, const char *value) {
	if (r->n_extra >= HTTP_MAX_EXTRA_HEADERS)
		return -E2BIG;
	r->extra[r->n_extra][0] = strdup(name);
	r->extra[r->n_extra][1] = strdup(value);
	if (!r->extra[r->n_extra][0] || !r->extra[r->n_extra][1])
		return -ENOMEM;
	r->n_extra++;
	return 0;
}

int http_reply_text(HttpRequest *r, unsigned status, const char *content_type, char *body, size_t size) {
	struct MHD_Response *resp;
	enum MHD_Result ok;

	if (r->replied) {
		free(body);
		return -EALREADY;
	}
	resp = MHD_create_response_from_buffer(size, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return -ENOMEM;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	for (size_t i = 0; i < r->n_extra; i++)
		MHD_add_response_header(resp, r->extra[i][0], r->extra[i][1]);
	ok = MHD_queue_response(r->connection, status, resp);
	MHD_destroy_response(resp);
	r->replied = true;
	return ok == MHD_YES ? 0 : -EIO;
}

/* Serialises and sends `body` (consumed); a trailing newline keeps curl
 * output readable. */
static int reply_json_as(HttpRequest *r, unsigned status, const char *content_type, json_t *body) {
	char *s = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15));
	char *t;
	size_t n;

	json_decref(body);
	if (!s)
		return -ENOMEM;
	n = strlen(s);
	t = realloc(s, n + 2);
	if (!t) {
		free(s);
		return -ENOMEM;
	}
	t[n] = '\n';
	t[n + 1] = 0;
	return http_reply_text(r, status, content_type, t, n + 1);
}

int http_reply_json(HttpRequest *r, unsigned status, json_t *body) {
	return reply_json_as(r, status, "application/json", body);
}

static const char *status_title(unsigned status) {
	switch (status) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

int http_reply_problem(HttpRequest *r, unsigned status, const char *title, const char *detail_fmt, ...) {
	char detail[1024], type[64];
	json_t *j;
	va_list ap;

	va_start(ap, detail_fmt);
	vsnprintf(detail, sizeof detail, detail_fmt, ap);
	va_end(ap);
	snprintf(type, sizeof type, "https://warden.invalid/problems/%u", status);
	j = json_pack("{s:s, s:s, s:i, s:s, s:s}", "type", type, "title", title ? title : status_title(status),
	              "status", (int)status, "detail", detail, "instance", r->path ? r->path : "");
	if (!j)
		return -ENOMEM;
	return reply_json_as(r, status, "application/problem+json", j);
}
