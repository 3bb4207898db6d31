/* SPDX-License-Identifier: MIT */
/*
 * wardenctl: the operator's CLI for wardend's HTTP API (api/README.md).
 * Usage, exit codes and examples: args_usage() and docs/wardenctl.md.
 *
 * One process runs one command. main() parses the command line into an
 * Options that everything else only reads; there is no other global state.
 * Commands (cmd-*.c) return exit codes; helpers return negative errno and
 * leave the message to their caller. Every mutation goes through
 * run_mutation() (mutation.c), and so carries an Idempotency-Key that makes
 * the client's retries (client.c) safe.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "args.h"
#include "cmd-cell.h"
#include "cmd-daemon.h"
#include "cmd-events.h"
#include "cmd-image.h"
#include "cmd-jailhouse.h"
#include "cmd-jailhouse-place.h"
#include "cmd-operation.h"
#include "exit-code.h"
#include "macro.h"

/* One process runs one command: a word, maybe a verb, and its arguments. */
typedef struct Command {
	const char *word;
	const char *verb; /* NULL: a one-word command */
	unsigned min_args;
	unsigned max_args;
	unsigned options; /* CommandOption flags it takes */
	int (*run)(const Options *o, const char *verb, char **args);
	bool offline; /* needs no daemon: no endpoint, token or libcurl */
} Command;

static const Command commands[] = {
	{ "health", NULL, 0, 0, 0, cmd_health, false },
	{ "cells", NULL, 0, 0, 0, cmd_cells, false },
	{ "cell", "show", 1, 1, 0, cmd_cell_show, false },
	{ "cell", "start", 1, 1, OPT_WAIT | OPT_KEY, cmd_cell_action, false },
	{ "cell", "stop", 1, 1, OPT_WAIT | OPT_KEY, cmd_cell_action, false },
	{ "cell", "restart", 1, 1, OPT_WAIT | OPT_KEY, cmd_cell_action, false },
	{ "cell", "shutdown", 1, 1, OPT_WAIT | OPT_KEY, cmd_cell_action, false },
	{ "cell", "create", 1, 1, OPT_KEY, cmd_cell_create, false },
	{ "cell", "replace", 1, 1, OPT_IF_MATCH | OPT_APPLY | OPT_WAIT | OPT_KEY, cmd_cell_replace, false },
	{ "cell", "delete", 1, 1, OPT_IF_MATCH | OPT_WAIT | OPT_KEY, cmd_cell_delete, false },
	{ "cell", "upload", 2, 2, OPT_AS | OPT_KEY, cmd_cell_upload, false },
	{ "cell", "images", 1, 1, 0, cmd_cell_images, false },
	{ "cell", "inject", 2, 2, OPT_KEY, cmd_cell_inject, false },
	{ "cell", "console", 1, 1, OPT_BYTES, cmd_cell_console, false },
	{ "operation", "show", 1, 1, OPT_WAIT, cmd_operation_show, false },
	{ "operations", NULL, 0, 0, 0, cmd_operations, false },
	{ "events", NULL, 0, 0, OPT_FOLLOW | OPT_SINCE, cmd_events, false },
	{ "hypervisor", "show", 0, 0, 0, cmd_hypervisor_show, false },
	{ "hypervisor", "enable", 0, 0, OPT_WAIT | OPT_KEY, cmd_hypervisor_action, false },
	{ "hypervisor", "disable", 0, 0, OPT_WAIT | OPT_KEY, cmd_hypervisor_action, false },
	{ "hypervisor", "restart", 0, 0, OPT_WAIT | OPT_KEY, cmd_hypervisor_action, false },
	{ "hypervisor", NULL, 0, 0, 0, cmd_hypervisor_show, false },
	{ "metrics", NULL, 0, 0, 0, cmd_metrics, false },
	{ "jailhouse", "import", 1, 1, OPT_ARCH, cmd_jailhouse_import, true },
	{ "jailhouse", "export", 1, 1, OPT_REVISION | OPT_ARCH | OPT_OUTPUT, cmd_jailhouse_export, true },
	{ "jailhouse", "place", 0, 0, OPT_PLACE, cmd_jailhouse_place, true },
};

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

int main(int argc, char **argv) {
	_cleanup_(options_done) Options o = { .timeout_s = DEFAULT_TIMEOUT_S };
	const Command *c;
	int r;

	if (args_parse(argc, argv, &o) < 0) {
		fprintf(stderr, "Try \"wardenctl --help\".\n");
		return EXIT_USAGE;
	}
	if (o.help) {
		args_usage(stdout);
		return EXIT_OK;
	}
	if (o.version) {
		printf("wardenctl %s\n", WARDEN_VERSION);
		return EXIT_OK;
	}
	c = find_command(&o);
	if (!c || args_check(&o, c->options, c->word, c->verb) < 0 || (!c->offline && args_resolve_endpoint(&o) < 0)) {
		fprintf(stderr, "Try \"wardenctl --help\".\n");
		return EXIT_USAGE;
	}
	if (c->offline) {
		r = c->run(&o, c->verb, o.args + 2);
		if (fflush(stdout) != 0 || ferror(stdout)) {
			fprintf(stderr, "wardenctl: writing the output failed\n");
			return r ?: EXIT_REFUSED;
		}
		return r;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "wardenctl: cannot initialize libcurl\n");
		return EXIT_REFUSED;
	}
	if (args_load_token(&o) < 0) {
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
