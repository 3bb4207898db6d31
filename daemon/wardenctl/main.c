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
	const char *usage;
	const char *summary;
} Command;

static const Command commands[] = {
	{ "health", NULL, 0, 0, 0, cmd_health, false,
	  "health",
	  "liveness and a summary: status, version, uptime, cells by state, listeners" },
	{ "cells", NULL, 0, 0, OPT_WATCH, cmd_cells, false,
	  "cells [-w] [-o wide|name|json|yaml] [--no-headers]",
	  "every cell, one line each; -w prints a cell's line again whenever it changes" },
	{ "cell", "show", 1, 1, 0, cmd_cell_show, false,
	  "cell show NAME",
	  "one cell: revision, spec, health, failures, hypervisor view, its newest events" },
	{ "cell", "start", 1, 1, OPT_WAIT | OPT_KEY, cmd_cell_action, false,
	  "cell start NAME [--wait [S]] [--idempotency-key K]",
	  "start a cell; one that is already up is left alone (exit 0)" },
	{ "cell", "stop", 1, 1, OPT_WAIT | OPT_KEY, cmd_cell_action, false,
	  "cell stop NAME [--wait [S]] [--idempotency-key K]",
	  "stop a cell (it stays stopped across daemon restarts); one already stopped is left alone (exit 0)" },
	{ "cell", "restart", 1, 1, OPT_WAIT | OPT_KEY, cmd_cell_action, false,
	  "cell restart NAME [--wait [S]] [--idempotency-key K]",
	  "restart a cell" },
	{ "cell", "shutdown", 1, 1, OPT_WAIT | OPT_KEY, cmd_cell_action, false,
	  "cell shutdown NAME [--wait [S]] [--idempotency-key K]",
	  "ask the inmate to shut down, through its mailbox" },
	{ "cell", "create", 1, 1, OPT_KEY, cmd_cell_create, false,
	  "cell create FILE [--idempotency-key K]",
	  "create a cell from a JSON spec (FILE \"-\": stdin)" },
	{ "cell", "replace", 1, 1, OPT_IF_MATCH | OPT_APPLY | OPT_WAIT | OPT_KEY, cmd_cell_replace, false,
	  "cell replace FILE [--if-match REV] [--apply] [--wait [S]] [--idempotency-key K]",
	  "replace the spec of the cell FILE names; --apply restarts it with the new spec at once" },
	{ "cell", "delete", 1, 1, OPT_IF_MATCH | OPT_WAIT | OPT_KEY, cmd_cell_delete, false,
	  "cell delete NAME [--if-match REV] [--wait [S]] [--idempotency-key K]",
	  "delete a cell" },
	{ "cell", "upload", 2, 2, OPT_AS | OPT_KEY, cmd_cell_upload, false,
	  "cell upload NAME FILE [--as IMAGE_NAME] [--idempotency-key K]",
	  "upload an image, checked by its SHA-256" },
	{ "cell", "images", 1, 1, 0, cmd_cell_images, false,
	  "cell images NAME",
	  "the images uploaded to a cell" },
	{ "cell", "inject", 2, 2, OPT_KEY, cmd_cell_inject, false,
	  "cell inject NAME FAULT [--idempotency-key K]",
	  "FAULT: hang, panic, crash, exit or stall (cells with allow_inject only)" },
	{ "cell", "console", 1, 1, OPT_BYTES, cmd_cell_console, false,
	  "cell console NAME [--bytes N]",
	  "the tail of the console (default 4096 bytes); see also logs" },
	{ "logs", NULL, 1, 1, OPT_FOLLOW | OPT_TAIL, cmd_logs, false,
	  "logs CELL [-f] [--tail N]",
	  "the cell's console: the newest N lines (default: all the daemon holds), -f: then what it prints, streamed" },
	{ "operation", "show", 1, 1, OPT_WAIT, cmd_operation_show, false,
	  "operation show ID [--wait [S]]",
	  "one operation" },
	{ "operations", NULL, 0, 0, OPT_WATCH, cmd_operations, false,
	  "operations [-w] [-o wide|name|json|yaml] [--no-headers]",
	  "the newest operations" },
	{ "events", NULL, 0, 0, OPT_FOLLOW | OPT_SINCE | OPT_FILTER | OPT_TAIL, cmd_events, false,
	  "events [-f] [--since ID|AGE] [--tail N] [--filter KEY=VALUE]...",
	  "the event stream with timestamps; --filter cell=NAME, type=TYPE (state, failure, operation, ...), kind=KIND" },
	{ "hypervisor", "show", 0, 0, 0, cmd_hypervisor_show, false,
	  "hypervisor [show]",
	  "state, backends, CPU sharing, cells" },
	{ "hypervisor", "enable", 0, 0, OPT_WAIT | OPT_KEY, cmd_hypervisor_action, false,
	  "hypervisor enable [--wait [S]] [--idempotency-key K]",
	  "enable the hypervisor" },
	{ "hypervisor", "disable", 0, 0, OPT_WAIT | OPT_KEY, cmd_hypervisor_action, false,
	  "hypervisor disable [--wait [S]] [--idempotency-key K]",
	  "disable the hypervisor (no cell may start)" },
	{ "hypervisor", "restart", 0, 0, OPT_WAIT | OPT_KEY, cmd_hypervisor_action, false,
	  "hypervisor restart [--wait [S]] [--idempotency-key K]",
	  "restart the hypervisor and every cell" },
	{ "hypervisor", NULL, 0, 0, 0, cmd_hypervisor_show, false,
	  "hypervisor [show]",
	  "state, backends, CPU sharing, cells" },
	{ "metrics", NULL, 0, 0, 0, cmd_metrics, false,
	  "metrics",
	  "Prometheus text, as is" },
	{ "jailhouse", "import", 1, 1, OPT_ARCH, cmd_jailhouse_import, true,
	  "jailhouse import FILE.cell [--arch A]",
	  "a Jailhouse cell or system config as warden JSON (offline)" },
	{ "jailhouse", "export", 1, 1, OPT_REVISION | OPT_ARCH | OPT_OUTPUT, cmd_jailhouse_export, true,
	  "jailhouse export SPEC.json -o FILE.cell [--revision 12|13|14] [--arch A]",
	  "the binary config of a JSON document (offline)" },
	{ "jailhouse", "place", 0, 0, OPT_PLACE, cmd_jailhouse_place, true,
	  "jailhouse place --cell C.cell --kernel IMAGE --dtb IN.dtb [--initrd F] [--cmdline S] --write-dtb OUT.dtb",
	  "where `jailhouse cell linux` puts Linux on arm64, and the DTB patched for the cell (offline)" },
};

/* wardenctl WORD [VERB] --help: the usage of the commands it names. */
static bool command_help(const Options *o) {
	bool any = false;

	for (size_t i = 0; o->n_args > 0 && i < ELEMENTSOF(commands); i++) {
		const Command *c = &commands[i];
		if (!streq(c->word, o->args[0]) || (o->n_args > 1 && c->verb && !streq(c->verb, o->args[1])))
			continue;
		if (c->verb == NULL && i > 0 && streq(commands[i - 1].word, c->word))
			continue; /* "hypervisor" alone: the same as "hypervisor show" */
		printf("%sUsage: wardenctl %s\n  %s\n", any ? "\n" : "", c->usage, c->summary);
		any = true;
	}
	if (any)
		printf("\nGlobal options (-o, --no-headers, --socket, --url, ...) and exit codes: wardenctl --help\n");
	return any;
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

int main(int argc, char **argv) {
	_cleanup_(options_done) Options o = { .timeout_s = DEFAULT_TIMEOUT_S, .tail = -1 };
	const Command *c;
	int r;

	if (args_parse(argc, argv, &o) < 0) {
		fprintf(stderr, "Try \"wardenctl --help\".\n");
		return EXIT_USAGE;
	}
	if (o.help) {
		if (!command_help(&o))
			args_usage(stdout);
		return EXIT_OK;
	}
	if (o.version) {
		printf("wardenctl %s\n", WARDEN_VERSION);
		return EXIT_OK;
	}
	c = find_command(&o);
	if (!c || args_check(&o, c->options, c->word, c->verb) < 0 || args_output_format(&o, c->options) < 0 ||
	    (!c->offline && args_resolve_endpoint(&o) < 0)) {
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
