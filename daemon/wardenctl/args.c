/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "args.h"
#include "buffer.h"
#include "cell-config.h"
#include "macro.h"
#include "names.h"

#define DEFAULT_SOCKET "/run/warden/wardend.sock"
#define DEFAULT_WAIT_S 60.0
#define TOKEN_MAX_BYTES 4096

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
	ID_REVISION,
	ID_ARCH,
	ID_OUTPUT,
	ID_CELL,
	ID_KERNEL,
	ID_DTB,
	ID_INITRD,
	ID_CMDLINE,
	ID_WRITE_DTB,
	ID_NO_HEADERS,
	ID_WATCH,
	ID_FILTER,
	ID_TAIL,
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
	{ "revision", 0, ARG_REQUIRED, ID_REVISION, OPT_REVISION },
	{ "arch", 0, ARG_REQUIRED, ID_ARCH, OPT_ARCH },
	{ "output", 'o', ARG_REQUIRED, ID_OUTPUT, 0 }, /* a format, or jailhouse export's FILE */
	{ "no-headers", 0, ARG_NONE, ID_NO_HEADERS, 0 },
	{ "watch", 'w', ARG_NONE, ID_WATCH, OPT_WATCH },
	{ "filter", 0, ARG_REQUIRED, ID_FILTER, OPT_FILTER },
	{ "tail", 0, ARG_REQUIRED, ID_TAIL, OPT_TAIL },
	{ "cell", 0, ARG_REQUIRED, ID_CELL, OPT_PLACE },
	{ "kernel", 0, ARG_REQUIRED, ID_KERNEL, OPT_PLACE },
	{ "dtb", 0, ARG_REQUIRED, ID_DTB, OPT_PLACE },
	{ "initrd", 0, ARG_REQUIRED, ID_INITRD, OPT_PLACE },
	{ "cmdline", 0, ARG_REQUIRED, ID_CMDLINE, OPT_PLACE },
	{ "write-dtb", 0, ARG_REQUIRED, ID_WRITE_DTB, OPT_PLACE },
};

void args_usage(FILE *f) {
	fputs("Usage: wardenctl [--socket PATH | --url URL [--token-file F] [--cacert F]] [-o FORMAT] [--no-headers]\n"
	      "                 [--timeout S] COMMAND\n"
	      "       wardenctl COMMAND [VERB] --help\n"
	      "\n"
	      "Operate wardend, the cell supervisor, through its HTTP API.\n"
	      "\n"
	      "Commands:\n"
	      "  health                                   liveness and a summary\n"
	      "  cells [-w]                               all cells, one line each; -w: and as they change\n"
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
	      "  logs CELL [-f] [--tail N]                the console's newest lines; -f: then live\n"
	      "  operation show ID [--wait [S]]           one operation\n"
	      "  operations [-w]                          the newest operations\n"
	      "  events [-f] [--since ID|AGE] [--tail N] [--filter KEY=VALUE]...\n"
	      "                                           the event stream; -f: only new ones unless --since\n"
	      "                                           or --tail; --filter cell=C, type=T[,T], kind=K\n"
	      "  hypervisor [show]                        state, backends, cells\n"
	      "  hypervisor enable|disable|restart [--wait [S]] [--idempotency-key K]\n"
	      "  metrics                                  Prometheus text\n"
	      "  jailhouse import FILE.cell [--arch A]    a Jailhouse cell or system config as warden JSON\n"
	      "  jailhouse export SPEC.json -o FILE.cell [--revision 12|13|14] [--arch A]\n"
	      "                                           the binary config of a JSON document\n"
	      "  jailhouse place --cell C.cell --kernel IMAGE --dtb IN.dtb [--initrd F] [--cmdline S]\n"
	      "                  --write-dtb OUT.dtb      where `jailhouse cell linux` puts Linux on arm64,\n"
	      "                                           as JSON, and the DTB patched for the cell\n"
	      "                                           (the three offline: no daemon needed)\n"
	      "\n"
	      "Options:\n"
	      "  -s --socket PATH        the daemon's unix socket (default " DEFAULT_SOCKET ")\n"
	      "  -u --url URL            a TCP listener instead: http://HOST:PORT or https://HOST:PORT\n"
	      "     --token-file F       bearer token (first line of F) for TCP listeners\n"
	      "     --cacert F           CA certificates to verify an https:// daemon\n"
	      "  -o --output FORMAT      json, yaml, wide or name (jailhouse export: -o FILE)\n"
	      "  -j --json               the same as -o json (events: one object a line)\n"
	      "     --no-headers         tables without their header line\n"
	      "  -w --watch              cells, operations: print a line again when it changes\n"
	      "     --timeout S          seconds to wait for an answer, beyond --wait (default 30)\n"
	      "     --wait [S]           wait until the operation ends, at most S seconds (default 60)\n"
	      "     --idempotency-key K  key of a mutation (default: a random one); reuse it to retry\n"
	      "                          a mutation whose outcome you did not learn\n"
	      "     --if-match REV       only if the cell's revision is still REV (a number, or *)\n"
	      "     --apply              replace: restart a running cell with the new spec at once\n"
	      "     --as IMAGE_NAME      upload: the image's name (default: FILE's base name)\n"
	      "     --bytes N            console: bytes of the tail (at most 65536)\n"
	      "  -f --follow             events: keep printing; reconnect when the stream drops; logs: stream\n"
	      "     --since ID|AGE       events: after event ID, or of the last AGE (30s, 10m, 2h, 1d)\n"
	      "     --tail N             events: the newest N (or all); logs: the newest N lines\n"
	      "     --filter KEY=VALUE   events: cell=NAME, type=T[,T...], kind=KIND (all must match)\n"
	      "     --revision R         jailhouse export: config revision 12, 13 or 14 (default: the\n"
	      "                          document's \"revision\", else 14)\n"
	      "     --arch A             jailhouse: x86, arm or arm64 (revisions 12 and 13 do not record it)\n"
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
	      "  0  success (also start of a running cell, stop of a stopped one: nothing to do)\n"
	      "  1  the daemon refused (4xx, 5xx), the operation failed or did not end within --wait\n"
	      "  2  usage error: bad arguments, unreadable file\n"
	      "  3  the daemon could not be reached, after the retries (a refused or forbidden local\n"
	      "     socket: at once)\n"
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

/* "90s", "10m", "1.5h", "2d": seconds. */
static bool parse_age(const char *s, double *ret) {
	static const struct {
		char unit;
		double s;
	} units[] = { { 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 } };
	size_t l = strlen(s);
	char num[32];
	double v;

	if (l < 2 || l >= sizeof num)
		return false;
	for (size_t i = 0; i < ELEMENTSOF(units); i++) {
		if (s[l - 1] != units[i].unit)
			continue;
		memcpy(num, s, l - 1);
		num[l - 1] = 0;
		if (!parse_number(num, 0, 1e9, &v) || v == 0)
			return false;
		*ret = v * units[i].s;
		return true;
	}
	return false;
}

int args_output_format(Options *o, unsigned allowed) {
	static const char *const names[] = {
		[FORMAT_TEXT] = "text", [FORMAT_JSON] = "json", [FORMAT_YAML] = "yaml",
		[FORMAT_WIDE] = "wide", [FORMAT_NAME] = "name",
	};

	if (!o->output || (allowed & OPT_OUTPUT))
		return 0;
	for (size_t i = 0; i < ELEMENTSOF(names); i++)
		if (streq(o->output, names[i])) {
			o->format = (OutputFormat)i;
			o->json = o->format == FORMAT_JSON || o->format == FORMAT_YAML;
			o->output = NULL;
			return 0;
		}
	fprintf(stderr, "wardenctl: -o %s: expected json, yaml, wide or name\n", o->output);
	return -EINVAL;
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
	case ID_JSON:
		o->json = true;
		o->format = FORMAT_JSON;
		break;
	case ID_NO_HEADERS: o->no_headers = true; break;
	case ID_WATCH: o->watch = true; break;
	case ID_FILTER: {
		const char *eq = strchr(value, '=');
		size_t kl = eq ? (size_t)(eq - value) : 0;
		if (!eq || !eq[1] ||
		    !((kl == 4 && strncmp(value, "cell", 4) == 0) || (kl == 4 && strncmp(value, "type", 4) == 0) ||
		      (kl == 4 && strncmp(value, "kind", 4) == 0))) {
			fprintf(stderr, "wardenctl: --filter %s: expected cell=NAME, type=EVENT_TYPE or kind=KIND\n", value);
			return -EINVAL;
		}
		if (o->n_filters == FILTERS_MAX) {
			fprintf(stderr, "wardenctl: at most %d --filter options\n", FILTERS_MAX);
			return -EINVAL;
		}
		o->filters[o->n_filters++] = value;
		break;
	}
	case ID_TAIL:
		if (streq(value, "all"))
			o->tail = LONG_MAX;
		else if (!parse_number(value, 0, 1e9, &v) || v != floor(v)) {
			fprintf(stderr, "wardenctl: --tail %s: expected a number of lines or events, or \"all\"\n", value);
			return -EINVAL;
		} else
			o->tail = (long)v;
		break;
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
		if (!names_idempotency_key_valid(value)) {
			fprintf(stderr, "wardenctl: --idempotency-key: expected " IDEMPOTENCY_KEY_RULE "\n");
			return -EINVAL;
		}
		o->idempotency_key = value;
		break;
	case ID_IF_MATCH:
		if (if_match_value(value, o->if_match_buf, sizeof o->if_match_buf) < 0) {
			fprintf(stderr, "wardenctl: --if-match %s: expected a revision number, a quoted ETag or *\n", value);
			return -EINVAL;
		}
		o->if_match = o->if_match_buf;
		break;
	case ID_BYTES:
		if (!parse_number(value, 1, 1 << 30, &v) || v != floor(v)) {
			fprintf(stderr, "wardenctl: --bytes %s: expected a positive integer\n", value);
			return -EINVAL;
		}
		o->bytes = (long)v;
		break;
	case ID_SINCE:
		/* Event ids are the daemon's counter, a decimal number (api-events.c);
		 * a number with a unit is an age: 30s, 10m, 2h, 1d. */
		if (parse_age(value, &o->since_age_s))
			break;
		if (!*value || strlen(value) > 20 || strspn(value, "0123456789") != strlen(value)) {
			fprintf(stderr, "wardenctl: --since %s: expected an event id or an age (30s, 10m, 2h, 1d)\n", value);
			return -EINVAL;
		}
		o->since = value;
		break;
	case ID_REVISION:
		if (!parse_number(value, JH_REVISION_MIN, JH_REVISION_MAX, &v) || v != floor(v)) {
			fprintf(stderr, "wardenctl: --revision %s: expected 12, 13 or 14\n", value);
			return -EINVAL;
		}
		o->revision = (unsigned)v;
		break;
	case ID_ARCH:
		if (jh_arch_from_string(value) == JH_ARCH_UNSPEC) {
			fprintf(stderr, "wardenctl: --arch %s: expected x86, arm or arm64\n", value);
			return -EINVAL;
		}
		o->arch = value;
		break;
	case ID_OUTPUT: o->output = value; break;
	case ID_CELL: o->place_cell = value; break;
	case ID_KERNEL: o->place_kernel = value; break;
	case ID_DTB: o->place_dtb = value; break;
	case ID_INITRD: o->place_initrd = value; break;
	case ID_CMDLINE: o->place_cmdline = value; break;
	case ID_WRITE_DTB: o->place_write_dtb = value; break;
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
int args_parse(int argc, char **argv, Options *o) {
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

int args_check(const Options *o, unsigned allowed, const char *word, const char *verb) {
	for (size_t i = 0; i < ELEMENTSOF(option_defs); i++)
		if ((o->seen & option_defs[i].flag) & ~allowed) {
			fprintf(stderr, "wardenctl: --%s does not apply to \"%s%s%s\"\n", option_defs[i].name, word,
			        verb ? " " : "", verb ? verb : "");
			return -EINVAL;
		}
	return 0;
}

int args_resolve_endpoint(Options *o) {
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
	int r = buffer_read_file(file, TOKEN_MAX_BYTES, &b);

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

int args_load_token(Options *o) {
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

void options_done(Options *o) {
	if (o->authorization) {
		explicit_bzero(o->authorization, strlen(o->authorization));
		free(o->authorization);
	}
}
