/* SPDX-License-Identifier: MIT */
/*
 * The demo process of a container cell: registers with libwarden-app,
 * beats every period, prints a line a second, and acts out the faults the
 * daemon injects (where the cell allows it): hang (no more beats, no more
 * mailbox), panic, crash (a real SIGSEGV), exit (halt, status 0), stall
 * (alive, no beats). --exit-after N halts by itself after N beats.
 * Statically linked, so that a busybox-static rootfs runs it.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "warden-app.h"

static void sleep_ms(uint32_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0)
		;
}

static void crash(void)
{
	volatile int *volatile p = NULL;

	*p = 1;
}

static void park(void)
{
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	struct warden_app app;
	uint32_t period = 0, arg = 0;
	unsigned long exit_after = 0, beats = 0;
	int r;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--period") == 0 && i + 1 < argc)
			period = (uint32_t)strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--exit-after") == 0 && i + 1 < argc)
			exit_after = strtoul(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: %s [--period MS] [--exit-after BEATS]\n", argv[0]);
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	r = warden_app_register(&app, NULL, period);
	if (r < 0) {
		fprintf(stderr, "warden-demo: cannot register: %s\n", strerror(-r));
		return 1;
	}
	printf("warden-demo: registered, beating every %u ms%s\n", app.period_ms,
	       app.inject ? ", fault injection allowed" : "");
	for (;;) {
		switch (warden_app_beat(&app, &arg)) {
		case WARDEN_APP_SHUTDOWN:
			printf("warden-demo: shutdown requested\n");
			warden_app_halt(&app, "shutdown");
			return 0;
		case WARDEN_APP_INJECT:
			printf("warden-demo: injected fault %u\n", arg);
			switch (arg) {
			case WARDEN_FAULT_HANG:
			case WARDEN_FAULT_STALL:
				park();
				break;
			case WARDEN_FAULT_PANIC:
				warden_app_panic(&app, "injected panic", WARDEN_FAULT_PANIC);
				park();
				break;
			case WARDEN_FAULT_CRASH:
				/* A fault the kernel delivers even to a pid
				 * namespace's init (which ignores a plain
				 * kill from inside). */
				crash();
				_exit(139);
			case WARDEN_FAULT_EXIT:
				warden_app_halt(&app, "injected exit");
				return 0;
			default:
				break;
			}
			break;
		default:
			break;
		}
		beats++;
		if (exit_after && beats >= exit_after) {
			printf("warden-demo: %lu beats, done\n", beats);
			warden_app_halt(&app, "work done");
			return 0;
		}
		if (beats % (1000 / app.period_ms + 1) == 0)
			printf("warden-demo: beat %lu\n", beats);
		sleep_ms(app.period_ms);
	}
}
