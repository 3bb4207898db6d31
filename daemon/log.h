/* SPDX-License-Identifier: MIT */
/*
 * Logging for wardend: to the journal with structured fields when stderr is
 * connected to it (JOURNAL_STREAM), to stderr otherwise. Only callers log;
 * helpers return negative errno.
 */
#pragma once

#include <errno.h>
#include <syslog.h>

/* MESSAGE_ID= values, so that lifecycle lines can be queried with
 * journalctl MESSAGE_ID=... */
#define MSGID_DAEMON_READY "5b8e0d6c2a3f4e1b9c7d6a5f4e3d2c1b"
#define MSGID_DAEMON_STOPPING "6c9f1e7d3b4a5f2c0d8e7b6a5f4e3d2c"
#define MSGID_CELL_STATE "7d0a2f8e4c5b6a3d1e9f8c7b6a5f4e3d"
#define MSGID_CELL_STARTED "8e1b3a9f5d6c7b4e2f0a9d8c7b6a5f4e"
#define MSGID_CELL_STOPPED "9f2c4b0a6e7d8c5f3a1b0e9d8c7b6a5f"
#define MSGID_CELL_FAILED "a03d5c1b7f8e9d6a4b2c1f0e9d8c7b6a"
#define MSGID_CELL_RECOVERED "b14e6d2c8a9f0e7b5c3d2a1f0e9d8c7b"
#define MSGID_CELL_ADOPTED "c25f7e3d9b0a1f8c6d4e3b2a1f0e9d8c"
#define MSGID_CELL_HEALTH "d3608f4e0c1b2a9d7e5f4c3b2a1f0e9d"
#define MSGID_AUDIT "e4719a5f1d2c3b0e8f6a5d4c3b2a1f0e"

void log_setup(void);
/* Sets the lowest priority that is written (LOG_DEBUG .. LOG_ERR). */
void log_set_max_level(int level);

/* cell and msgid may be NULL. Returns -abs(error) so callers can
 * `return log_error_errno(r, ...)`; error may be 0. %m prints error. */
int log_internal(int level, int error, const char *cell, const char *msgid,
                 const char *file, int line, const char *func,
                 const char *format, ...) __attribute__((format(printf, 8, 9)));

#define log_full_errno(level, error, cell, msgid, ...) \
	log_internal((level), (error), (cell), (msgid), __FILE__, __LINE__, __func__, __VA_ARGS__)

#define log_debug(...) log_full_errno(LOG_DEBUG, 0, NULL, NULL, __VA_ARGS__)
#define log_info(...) log_full_errno(LOG_INFO, 0, NULL, NULL, __VA_ARGS__)
#define log_notice(...) log_full_errno(LOG_NOTICE, 0, NULL, NULL, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, NULL, NULL, __VA_ARGS__)
#define log_error(...) log_full_errno(LOG_ERR, 0, NULL, NULL, __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, error, NULL, NULL, __VA_ARGS__)
#define log_error_errno(error, ...) log_full_errno(LOG_ERR, error, NULL, NULL, __VA_ARGS__)

/* Lifecycle lines of one cell: CELL= and MESSAGE_ID= fields. */
#define log_cell(level, cell, msgid, ...) log_full_errno(level, 0, cell, msgid, __VA_ARGS__)
#define log_cell_errno(level, error, cell, msgid, ...) log_full_errno(level, error, cell, msgid, __VA_ARGS__)
