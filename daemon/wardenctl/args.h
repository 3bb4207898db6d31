/* SPDX-License-Identifier: MIT */
/*
 * wardenctl's command line: the options, wherever they stand among the
 * command's words, parsed into an Options that everything else only reads;
 * the endpoint from the options or the environment; the bearer token from
 * its file. Bad input is reported here, where the option is known: the
 * functions print why and return a negative errno.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define DEFAULT_TIMEOUT_S 30.0
#define ARGS_MAX 8

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
	OPT_REVISION = 1 << 8,
	OPT_ARCH = 1 << 9,
	OPT_OUTPUT = 1 << 10,
	OPT_PLACE = 1 << 11, /* --cell, --kernel, --dtb, --initrd, --cmdline, --write-dtb */
	OPT_WATCH = 1 << 12,
	OPT_FILTER = 1 << 13,
	OPT_TAIL = 1 << 14,
} CommandOption;

/* -o: how a command prints (the jailhouse export's -o is its FILE). */
typedef enum OutputFormat {
	FORMAT_TEXT, /* tables and "key: value" lines */
	FORMAT_JSON, /* the daemon's JSON (also --json) */
	FORMAT_YAML, /* the same document as YAML */
	FORMAT_WIDE, /* tables with more columns */
	FORMAT_NAME, /* lists: the names only, one a line */
} OutputFormat;

#define FILTERS_MAX 8

typedef struct Options {
	const char *socket;
	const char *url;
	const char *token_file;
	const char *cacert;
	bool json; /* a document on stdout: FORMAT_JSON or FORMAT_YAML */
	OutputFormat format;
	bool no_headers;
	bool watch;
	const char *filters[FILTERS_MAX]; /* events: KEY=VALUE */
	size_t n_filters;
	long tail;          /* events, logs: the newest N; -1: not given */
	double since_age_s; /* events --since DURATION; 0: not given */
	bool help;
	bool version;
	double timeout_s;
	unsigned seen; /* CommandOption flags given */
	double wait_s;
	const char *idempotency_key;
	const char *if_match; /* the If-Match header's value, in if_match_buf */
	char if_match_buf[32];
	const char *as;
	const char *since;
	bool apply;
	bool follow;
	long bytes;
	unsigned revision;  /* jailhouse export: 12..14, 0 = the document's */
	const char *arch;   /* jailhouse: x86, arm or arm64 (checked) */
	const char *output; /* jailhouse export: -o FILE */
	/* jailhouse place: the inputs of `jailhouse cell linux` and where the
	 * patched DTB goes */
	const char *place_cell;
	const char *place_kernel;
	const char *place_dtb;
	const char *place_initrd;
	const char *place_cmdline;
	const char *place_write_dtb;
	char *authorization; /* "Authorization: Bearer …", owned, wiped on exit */
	bool stdout_tty;
	bool stderr_tty;
	char *args[ARGS_MAX];
	size_t n_args;
} Options;

int args_parse(int argc, char **argv, Options *o);
/* -o names a format, unless the command takes it as its FILE (OPT_OUTPUT). */
int args_output_format(Options *o, unsigned allowed);
/* Refuses options (CommandOption flags) the command does not take. */
int args_check(const Options *o, unsigned allowed, const char *word, const char *verb);
/* The command line wins over the environment; the socket is the default. */
int args_resolve_endpoint(Options *o);
int args_load_token(Options *o);
void args_usage(FILE *f);
void options_done(Options *o);
