/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

static bool log_to_journal;
static int log_max_level = LOG_INFO;

/* systemd sets JOURNAL_STREAM=dev:ino for services whose stderr goes to the
 * journal; only then are native journal messages the right channel. */
void log_setup(void) {
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	log_to_journal = false;
	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
		return;
	if (fstat(STDERR_FILENO, &st) < 0)
		return;
	log_to_journal = st.st_dev == (dev_t)dev && st.st_ino == (ino_t)ino;
}

void log_set_max_level(int level) {
	log_max_level = level;
}

int log_internal(int level, int error, const char *cell, const char *msgid,
                 const char *file, int line, const char *func,
                 const char *format, ...) {
	char buf[2048];
	va_list ap;
	int saved = errno;

	if (error < 0)
		error = -error;
	if (level > log_max_level)
		return -error;

	errno = error;
	va_start(ap, format);
	vsnprintf(buf, sizeof buf, format, ap);
	va_end(ap);
	errno = saved;

	if (log_to_journal) {
		char f[7][2200];
		struct iovec iov[7];
		int n = 0;

		snprintf(f[n++], sizeof f[0], "MESSAGE=%s", buf);
		snprintf(f[n++], sizeof f[0], "PRIORITY=%d", level);
		snprintf(f[n++], sizeof f[0], "CODE_FILE=%s", file);
		snprintf(f[n++], sizeof f[0], "CODE_LINE=%d", line);
		snprintf(f[n++], sizeof f[0], "CODE_FUNC=%s", func);
		if (cell)
			snprintf(f[n++], sizeof f[0], "CELL=%s", cell);
		if (msgid)
			snprintf(f[n++], sizeof f[0], "MESSAGE_ID=%s", msgid);
		for (int i = 0; i < n; i++)
			iov[i] = (struct iovec){ .iov_base = f[i], .iov_len = strlen(f[i]) };
		sd_journal_sendv(iov, n);
	} else {
		struct timespec ts;
		static const char *const prio[] = { "emerg", "alert", "crit", "error",
		                                    "warning", "notice", "info", "debug" };
		char when[48], zone[8];
		struct tm tm;
		size_t cl = cell ? strlen(cell) : 0;
		clock_gettime(CLOCK_REALTIME, &ts);
		/* ISO 8601, local time with its offset, as journalctl -o short-iso */
		localtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
		strftime(zone, sizeof zone, "%z", &tm);
		/* a message that names its cell first ("Cell \"X\" ...") needs no prefix */
		if (cell && strncmp(buf, "Cell \"", 6) == 0 && strncmp(buf + 6, cell, cl) == 0 && buf[6 + cl] == '"')
			cell = NULL;
		fprintf(stderr, "%s.%03ld%.3s:%s wardend[%d] %s: %s%s%s%s\n", when, ts.tv_nsec / 1000000, zone,
		        zone[0] ? zone + 3 : "", (int)getpid(), prio[level & 7], cell ? "cell " : "", cell ? cell : "",
		        cell ? ": " : "", buf);
	}
	return -error;
}
