/* SPDX-License-Identifier: MIT */
#include "idempotency.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <jansson.h>

#include "auth.h"
#include "macro.h"
#include "manager.h"
#include "persist.h"

bool idempotency_key_is_valid(const char *key) {
	return names_idempotency_key_valid(key);
}

/* Records written before keys were scoped per principal (version 1, no
 * "version" field) are named after the key alone; principal NULL names
 * those. */
#define RECORD_VERSION 2

static int record_path(Manager *m, const char *principal, const char *key, char *buf, size_t n) {
	gnutls_hash_hd_t hd;
	uint8_t h[SHA256_LEN];
	char hex[2 * SHA256_LEN + 1];
	int k;

	if (gnutls_hash_init(&hd, GNUTLS_DIG_SHA256) < 0)
		return -EIO;
	/* NUL cannot occur in either: "a" "bc" and "ab" "c" stay apart */
	if (principal)
		(void)gnutls_hash(hd, principal, strlen(principal) + 1);
	(void)gnutls_hash(hd, key, strlen(key));
	gnutls_hash_deinit(hd, h);
	sha256_hex(h, hex);
	k = snprintf(buf, n, "%s/idempotency/%s.json", manager_state_dir(m), hex);
	return k < 0 || (size_t)k >= n ? -ENAMETOOLONG : 0;
}

void idem_record_clear(IdemRecord *rec) {
	free(rec->body);
	rec->body = NULL;
}

static void copy_str(json_t *j, const char *key, char *dst, size_t n) {
	const char *s = json_string_value(json_object_get(j, key));
	snprintf(dst, n, "%s", s ? s : "");
}

static bool expired_at(json_t *j, uint64_t now_s, uint32_t ttl_s) {
	json_int_t created = json_integer_value(json_object_get(j, "created_s"));
	return created <= 0 || now_s > (uint64_t)created + ttl_s;
}

static bool expired(Manager *m, json_t *j) {
	return expired_at(j, now_ns(CLOCK_REALTIME) / NSEC_PER_SEC, manager_config(m)->api.idempotency_ttl_s);
}

/* principal NULL: a version 1 record, which must not have a version. */
int idem_record_from_json(json_t *j, const char *principal, const char *key, uint64_t now_s, uint32_t ttl_s,
                          IdemRecord *ret) {
	const char *k = json_string_value(json_object_get(j, "key"));
	const char *body = json_string_value(json_object_get(j, "body"));
	json_t *version = json_object_get(j, "version");

	if (!k || strcmp(k, key) != 0 || !body || expired_at(j, now_s, ttl_s))
		return -ENOENT;
	*ret = (IdemRecord){ .status = (unsigned)json_integer_value(json_object_get(j, "status")) };
	if (principal) {
		const char *p = json_string_value(json_object_get(j, "principal"));
		const char *h = json_string_value(json_object_get(j, "request_sha256"));
		if (json_integer_value(version) != RECORD_VERSION || !p || strcmp(p, principal) != 0 || !h ||
		    sha256_from_hex(h, ret->request_sha256) < 0)
			return -ENOENT;
		ret->has_request_sha256 = true;
	} else if (version)
		return -ENOENT;
	copy_str(j, "method", ret->method, sizeof ret->method);
	copy_str(j, "path", ret->path, sizeof ret->path);
	copy_str(j, "content_type", ret->content_type, sizeof ret->content_type);
	copy_str(j, "location", ret->location, sizeof ret->location);
	copy_str(j, "etag", ret->etag, sizeof ret->etag);
	copy_str(j, "operation", ret->operation, sizeof ret->operation);
	ret->waited = json_is_true(json_object_get(j, "waited"));
	ret->body = strdup(body);
	ret->body_len = ret->body ? strlen(ret->body) : 0;
	return ret->body ? 0 : -ENOMEM;
}

static int lookup_one(Manager *m, const char *principal, const char *key, IdemRecord *ret) {
	char p[4096];
	json_t *j;
	int r;

	if ((r = record_path(m, principal, key, p, sizeof p)) < 0)
		return r;
	j = json_load_file(p, 0, NULL);
	if (!j)
		return -ENOENT;
	r = idem_record_from_json(j, principal, key, now_ns(CLOCK_REALTIME) / NSEC_PER_SEC,
	                          manager_config(m)->api.idempotency_ttl_s, ret);
	json_decref(j);
	return r;
}

int idempotency_lookup(Manager *m, const char *principal, const char *key, IdemRecord *ret) {
	int r = lookup_one(m, principal, key, ret);
	if (r != -ENOENT)
		return r;
	/* A version 1 record, from before the upgrade, so that a retry across
	 * it still runs nothing twice. It knows neither its principal nor its
	 * body: it is anyone's and matches on method and path only, as it did
	 * when it was written. It expires like any other, within the TTL. */
	return lookup_one(m, NULL, key, ret);
}

int idempotency_store(Manager *m, const char *principal, const char *key, const IdemRecord *rec) {
	char p[4096], dir[4096], hex[2 * SHA256_LEN + 1];
	json_t *j;
	int r;

	if (!rec->has_request_sha256)
		return -EINVAL;
	if ((r = record_path(m, principal, key, p, sizeof p)) < 0)
		return r;
	sha256_hex(rec->request_sha256, hex);
	snprintf(dir, sizeof dir, "%s/idempotency", manager_state_dir(m));
	if ((r = mkdir_p(dir, 0700)) < 0)
		return r;
	j = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:s, s:s%, s:I}", "key", key, "method", rec->method, "path",
	              rec->path, "status", (int)rec->status, "content_type", rec->content_type, "location",
	              rec->location, "etag", rec->etag, "operation", rec->operation, "body", rec->body,
	              rec->body_len, "created_s", (json_int_t)(now_ns(CLOCK_REALTIME) / NSEC_PER_SEC));
	if (!j)
		return -ENOMEM;
	json_object_set_new(j, "waited", json_boolean(rec->waited));
	json_object_set_new(j, "version", json_integer(RECORD_VERSION));
	json_object_set_new(j, "principal", json_string(principal));
	json_object_set_new(j, "request_sha256", json_string(hex));
	r = write_json_atomic(p, j);
	json_decref(j);
	return r;
}

unsigned idempotency_prune(Manager *m) {
	char dir[4096];
	unsigned n = 0;
	DIR *d;
	struct dirent *de;

	snprintf(dir, sizeof dir, "%s/idempotency", manager_state_dir(m));
	d = opendir(dir);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char p[4096];
		json_t *j;
		if (!strstr(de->d_name, ".json") || strstr(de->d_name, ".tmp."))
			continue;
		if (snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= (int)sizeof p)
			continue;
		j = json_load_file(p, 0, NULL);
		if (!j || expired(m, j)) {
			if (unlink(p) == 0)
				n++;
		}
		json_decref(j);
	}
	closedir(d);
	return n;
}
