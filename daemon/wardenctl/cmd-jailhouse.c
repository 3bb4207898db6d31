/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "buffer.h"
#include "cell-config-json.h"
#include "cell-config.h"
#include "cmd-jailhouse.h"
#include "exit-code.h"
#include "macro.h"

/* Configs are kilobytes; this only stops a wrong file from filling memory. */
#define CONFIG_MAX_BYTES (16u << 20)

static void cell_freep(JhCellConfig **c) {
	jh_cell_config_free(*c);
}
static void system_freep(JhSystemConfig **s) {
	jh_system_config_free(*s);
}

/* args.c has checked the name. */
static JhArch option_arch(const Options *o) {
	return o->arch ? jh_arch_from_string(o->arch) : JH_ARCH_UNSPEC;
}

static int read_input(const char *file, Buffer *ret) {
	int r = buffer_read_file(file, CONFIG_MAX_BYTES, ret);

	if (r < 0)
		fprintf(stderr, "wardenctl: %s: %s\n", file,
		        r == -EFBIG ? "larger than any Jailhouse config" : strerror(-r));
	return r;
}

int cmd_jailhouse_import(const Options *o, const char *verb, char **args) {
	_cleanup_(buffer_done) Buffer b = { 0 };
	_cleanup_(cell_freep) JhCellConfig *cell = NULL;
	_cleanup_(system_freep) JhSystemConfig *sys = NULL;
	_cleanup_(json_decrefp) json_t *doc = NULL;
	const char *file = args[0];
	char err[512] = "";
	JhConfigKind kind;
	unsigned rev;
	int r;

	(void)verb;
	if (read_input(file, &b) < 0)
		return EXIT_USAGE;
	r = jh_config_identify(b.data, b.size, &kind, &rev, err, sizeof err);
	if (r >= 0 && kind == JH_CONFIG_CELL)
		r = jh_cell_config_decode(b.data, b.size, option_arch(o), &cell, err, sizeof err);
	else if (r >= 0)
		r = jh_system_config_decode(b.data, b.size, option_arch(o), &sys, err, sizeof err);
	if (r >= 0)
		r = cell ? jh_cell_config_to_json(cell, &doc, err, sizeof err)
		         : jh_system_config_to_json(sys, &doc, err, sizeof err);
	if (r == -ENOMEM && !doc)
		return oom();
	if (r < 0) {
		fprintf(stderr, "wardenctl: %s: %s\n", file, err);
		return EXIT_USAGE;
	}
	if (json_dumpf(doc, stdout, JSON_INDENT(2)) < 0 || fputc('\n', stdout) == EOF)
		return EXIT_REFUSED; /* main() says that writing failed */
	return EXIT_OK;
}

int cmd_jailhouse_export(const Options *o, const char *verb, char **args) {
	_cleanup_(buffer_done) Buffer b = { 0 };
	_cleanup_(cell_freep) JhCellConfig *cell = NULL;
	_cleanup_(system_freep) JhSystemConfig *sys = NULL;
	_cleanup_(json_decrefp) json_t *doc = NULL;
	_cleanup_free_ uint8_t *data = NULL;
	const char *file = args[0];
	char err[512] = "";
	json_error_t jerr;
	JhConfigKind kind;
	size_t size = 0;
	int r;

	(void)verb;
	if (!o->output) {
		fprintf(stderr, "wardenctl: jailhouse export: -o FILE is required (\"-\": stdout)\n");
		return EXIT_USAGE;
	}
	if (read_input(file, &b) < 0)
		return EXIT_USAGE;
	doc = json_loadb(b.data, b.size, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		fprintf(stderr, "wardenctl: %s:%d:%d: %s\n", file, jerr.line, jerr.column, jerr.text);
		return EXIT_USAGE;
	}
	r = jh_config_json_kind(doc, &kind, err, sizeof err);
	if (r >= 0 && kind == JH_CONFIG_CELL && (r = jh_cell_config_from_json(doc, &cell, err, sizeof err)) >= 0) {
		/* The command line wins over the document. */
		if (o->revision)
			cell->revision = o->revision;
		if (o->arch)
			cell->arch = option_arch(o);
		r = jh_cell_config_encode(cell, &data, &size, err, sizeof err);
	} else if (r >= 0 && kind == JH_CONFIG_SYSTEM &&
	           (r = jh_system_config_from_json(doc, &sys, err, sizeof err)) >= 0) {
		if (o->revision)
			sys->revision = o->revision;
		if (o->arch) {
			sys->arch = option_arch(o);
			if (sys->platform == JH_PLATFORM_UNSPEC)
				sys->platform = jh_arch_platform(sys->arch);
		}
		r = jh_system_config_encode(sys, &data, &size, err, sizeof err);
	}
	if (r < 0) {
		fprintf(stderr, "wardenctl: %s: %s\n", file, err);
		return EXIT_USAGE;
	}
	/* atomic: a failed export never leaves half a config where a
	 * Jailhouse tool would load it */
	r = buffer_write_file_atomic(o->output, data, size);
	if (r < 0) {
		fprintf(stderr, "wardenctl: %s: %s\n", o->output, strerror(-r));
		return EXIT_REFUSED;
	}
	return EXIT_OK;
}
