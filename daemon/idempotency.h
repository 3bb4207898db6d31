/* SPDX-License-Identifier: MIT */
/*
 * Idempotency-Key records: the first response to a mutation with a key is
 * kept (STATE_DIR/idempotency/SHA256(PRINCIPAL NUL KEY).json, written
 * atomically before the response leaves), so a retried ground command
 * returns that response and runs nothing twice. A key belongs to the
 * principal that sent it (a token's name, unix:uid=N): two principals'
 * keys never meet. A record holds the request's method, path and the
 * SHA-256 of its body, so that a key reused for another request is told
 * apart (422) from a retry. Records expire after api.idempotency_ttl_s.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "auth.h"
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
	/* the SHA-256 of the request's body; none in records written before
	 * bodies were compared (see idempotency_lookup) */
	bool has_request_sha256;
	uint8_t request_sha256[SHA256_LEN];
	char *body;         /* the response's */
	size_t body_len;
} IdemRecord;

bool idempotency_key_is_valid(const char *key);
/* 0 and principal's record of key, -ENOENT when unknown or expired. */
int idempotency_lookup(Manager *m, const char *principal, const char *key, IdemRecord *ret);
int idempotency_store(Manager *m, const char *principal, const char *key, const IdemRecord *rec);
/* The record a file's JSON holds, as idempotency_lookup() reads it:
 * -ENOENT when it is another key's or principal's, has no body, or expired
 * at now_s. principal NULL: a record from before principals (version 1). */
int idem_record_from_json(json_t *j, const char *principal, const char *key, uint64_t now_s, uint32_t ttl_s,
                          IdemRecord *ret);
void idem_record_clear(IdemRecord *rec);
/* Drop expired records; returns how many went. */
unsigned idempotency_prune(Manager *m);
