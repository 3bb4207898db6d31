/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "macro.h"
#include "output.h"

const char *jstr(json_t *o, const char *key) {
	return json_string_value(json_object_get(o, key));
}

const char *dash(const char *s) {
	return s && *s ? s : "-";
}

const char *format_ms(double ms, char *buf, size_t n) {
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

const char *format_json_ms(json_t *j, char *buf, size_t n) {
	if (!json_is_number(j)) {
		snprintf(buf, n, "-");
		return buf;
	}
	return format_ms(json_number_value(j), buf, n);
}

const char *format_size(json_t *j, char *buf, size_t n) {
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

const char *format_list(json_t *a, const char *key, const char *sep, char *buf, size_t n) {
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

json_t *json_list(json_t *j, const char *key) {
	return json_is_array(j) ? j : json_object_get(j, key);
}

void table_cell(Table *t, const char *fmt, ...) {
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

int table_print(const Table *t, const Options *o) {
	size_t width[16] = { 0 };
	size_t first = o && (o->no_headers || o->format == FORMAT_NAME) ? t->n_cols : 0;

	if (t->failed)
		return -ENOMEM;
	if (t->n_cols > ELEMENTSOF(width))
		abort();
	if (o && o->format == FORMAT_NAME) {
		/* the first column is the name (or id) of what the row shows */
		for (size_t i = first; i < t->n_cells; i += t->n_cols)
			printf("%s\n", t->cells[i]);
		return 0;
	}
	for (size_t i = first; i < t->n_cells; i++) {
		size_t l = strlen(t->cells[i]);
		if (l > width[i % t->n_cols])
			width[i % t->n_cols] = l;
	}
	for (size_t i = first; i < t->n_cells; i++) {
		bool last = i % t->n_cols == t->n_cols - 1 || i == t->n_cells - 1;
		if (last)
			printf("%s\n", t->cells[i]);
		else
			printf("%-*s  ", (int)width[i % t->n_cols], t->cells[i]);
	}
	return 0;
}

void table_done(Table *t) {
	for (size_t i = 0; i < t->n_cells; i++)
		free(t->cells[i]);
	free(t->cells);
	*t = (Table){ 0 };
}

void kv(const char *key, const char *fmt, ...) {
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

void print_json_text(const char *s, size_t n) {
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

void clear_progress_line(const Options *o) {
	if (o->stderr_tty)
		fputs("\r\033[K", stderr);
}

/* A string YAML reads back as the same string without quotes: no
 * indicator first, nothing a plain scalar cannot hold, and no word that
 * YAML 1.1 or 1.2 would read as a boolean, null or number. */
static bool yaml_plain(const char *s) {
	static const char *const words[] = { "true", "false", "yes", "no", "on", "off", "null", "~", "y", "n" };
	char *end;

	/* a digit first: a number, a date or a time to some YAML reader */
	if (!*s || strchr("-?:,[]{}#&*!|>'\"%@` .+0123456789", s[0]) || s[strlen(s) - 1] == ' ')
		return false;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || (p[0] == ':' && (p[1] == ' ' || !p[1])) ||
		    (p[0] == ' ' && p[1] == '#'))
			return false;
	for (size_t i = 0; i < ELEMENTSOF(words); i++)
		if (strcasecmp(s, words[i]) == 0)
			return false;
	(void)strtod(s, &end);
	if (*end == 0 || strncasecmp(s, "0x", 2) == 0 || strncasecmp(s, "0o", 2) == 0 || strcasecmp(s, ".inf") == 0 ||
	    strcasecmp(s, ".nan") == 0)
		return false;
	return true;
}

static void yaml_scalar(json_t *v) {
	char *s;

	if (json_is_string(v) && yaml_plain(json_string_value(v))) {
		fputs(json_string_value(v), stdout);
		return;
	}
	/* JSON's strings, numbers, true, false and null are YAML as they are */
	s = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
	fputs(s ? s : "null", stdout);
	free(s);
}

static bool yaml_empty_or_scalar(json_t *v) {
	return !(json_is_object(v) && json_object_size(v)) && !(json_is_array(v) && json_array_size(v));
}

static void yaml_value(json_t *v, int indent);

static void yaml_inline(json_t *v) {
	if (json_is_object(v))
		fputs("{}", stdout);
	else if (json_is_array(v))
		fputs("[]", stdout);
	else
		yaml_scalar(v);
}

/* A block collection; the first line's indentation is already printed
 * (after "- " of a sequence item). */
static void yaml_block(json_t *v, int indent, bool first_indented) {
	const char *k;
	json_t *x;
	size_t i;
	bool first = true;

	if (json_is_object(v)) {
		json_object_foreach(v, k, x) {
			_cleanup_(json_decrefp) json_t *key = json_string(k);
			if (!first || !first_indented)
				printf("%*s", indent, "");
			first = false;
			if (key)
				yaml_scalar(key);
			fputc(':', stdout);
			if (yaml_empty_or_scalar(x)) {
				fputc(' ', stdout);
				yaml_inline(x);
				fputc('\n', stdout);
			} else {
				fputc('\n', stdout);
				yaml_value(x, json_is_array(x) ? indent : indent + 2);
			}
		}
		return;
	}
	json_array_foreach(v, i, x) {
		if (!first || !first_indented)
			printf("%*s", indent, "");
		first = false;
		fputs("- ", stdout);
		if (yaml_empty_or_scalar(x)) {
			yaml_inline(x);
			fputc('\n', stdout);
		} else
			yaml_block(x, indent + 2, true);
	}
}

static void yaml_value(json_t *v, int indent) {
	if (yaml_empty_or_scalar(v)) {
		printf("%*s", indent, "");
		yaml_inline(v);
		fputc('\n', stdout);
		return;
	}
	yaml_block(v, indent, false);
}

void print_yaml(json_t *v) {
	yaml_value(v, 0);
}

void print_doc(const Options *o, const char *s, size_t n) {
	_cleanup_(json_decrefp) json_t *j = NULL;

	if (o->format == FORMAT_YAML && (j = json_loadb(s, n, JSON_DECODE_ANY, NULL))) {
		print_yaml(j);
		return;
	}
	print_json_text(s, n);
}
