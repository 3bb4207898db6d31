/* SPDX-License-Identifier: MIT */
/*
 * What wardenctl prints for people: aligned tables, "key: value" lines,
 * durations and sizes in readable units; and, for --json, the daemon's JSON
 * re-indented only. Fields the daemon does not send print as "-".
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "args.h"

typedef struct Table {
	size_t n_cols;
	size_t n_cells;
	size_t allocated;
	char **cells;
	bool failed; /* out of memory while filling; reported at print time */
} Table;

const char *jstr(json_t *o, const char *key);
const char *dash(const char *s);
/* A list in the answer may come bare or wrapped: [..] or {"KEY": [..]}. */
json_t *json_list(json_t *j, const char *key);

/* "0.32 ms", "3.4 ms", "2.2 s", "3m12s", "2h05m", "3d04h". */
const char *format_ms(double ms, char *buf, size_t n);
const char *format_json_ms(json_t *j, char *buf, size_t n);
/* Region sizes as the spec author wrote them: "4 MiB", or as given. */
const char *format_size(json_t *j, char *buf, size_t n);
/* Items of a JSON array joined by sep: strings as they are, numbers, or the
 * field key of objects. */
const char *format_list(json_t *a, const char *key, const char *sep, char *buf, size_t n);

/* Cells fill the table row by row, n_cols a row. */
void table_cell(Table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int table_print(const Table *t, const Options *o);
void table_done(Table *t);

/* "key:    value", values aligned; an empty key continues the line above. */
void kv(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Pretty-prints JSON text by re-indenting it only: numbers, escapes and key
 * order stay byte for byte what the daemon sent. The text must be valid. */
void print_json_text(const char *s, size_t n);
/* A JSON document as YAML (block style; strings quoted where YAML would
 * read them otherwise). */
void print_yaml(json_t *v);
/* The daemon's document in the -o format: JSON as print_json_text(), or YAML. */
void print_doc(const Options *o, const char *s, size_t n);

/* Before a message on stderr: the progress line on a terminal goes. */
void clear_progress_line(const Options *o);
