/* SPDX-License-Identifier: MIT */
/*
 * Idempotency-Key records: the first response to a mutation with a key is
 * kept (STATE_DIR/idempotency/SHA256(KEY).json, written atomically before
 * the response leaves), so a retried ground command returns that response
 * and runs nothing twice. Records expire after api.idempotency_ttl_s.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "names.h"

typedef struct Manager Manager;

typedef struct IdemRecord {
	char method[8];
	char path[512];
	unsigned status;
	char content_type[64];
	char location[128];
	char etag[32];
	char operation[48]; /* the operation the request started, or "" */
	bool waited;        /* the request asked to ?wait= for it */
	char *body;
	size_t body_len;
} IdemRecord;

bool idempotency_key_is_valid(const char *key);
/* 0 and the record, -ENOENT when unknown or expired. */
int idempotency_lookup(Manager *m, const char *key, IdemRecord *ret);
/* The record a file's JSON holds, as idempotency_lookup() reads it:
 * -ENOENT when it is another key's, has no body, or expired at now_s. */
int idem_record_from_json(json_t *j, const char *key, uint64_t now_s, uint32_t ttl_s, IdemRecord *ret);
int idempotency_store(Manager *m, const char *key, const IdemRecord *rec);
void idem_record_clear(IdemRecord *rec);
/* Drop expired records; returns how many went. */
unsigned idempotency_prune(Manager *m);
