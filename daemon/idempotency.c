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

static int record_path(Manager *m, const char *key, char *buf, size_t n) {
	uint8_t h[SHA256_LEN];
	char hex[2 * SHA256_LEN + 1];
	int k;

	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, key, strlen(key), h) < 0)
		return -EIO;
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

static bool expired(json_t *j, uint64_t now_s, uint32_t ttl_s) {
	json_int_t created = json_integer_value(json_object_get(j, "created_s"));
	return created <= 0 || now_s > (uint64_t)created + ttl_s;
}

static uint64_t now_s(void) {
	return now_ns(CLOCK_REALTIME) / NSEC_PER_SEC;
}

int idem_record_from_json(json_t *j, const char *key, uint64_t now, uint32_t ttl_s, IdemRecord *ret) {
	const char *body, *k;

	k = json_string_value(json_object_get(j, "key"));
	body = json_string_value(json_object_get(j, "body"));
	if (!k || strcmp(k, key) != 0 || !body || expired(j, now, ttl_s))
		return -ENOENT;
	*ret = (IdemRecord){ .status = (unsigned)json_integer_value(json_object_get(j, "status")) };
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

int idempotency_lookup(Manager *m, const char *key, IdemRecord *ret) {
	char p[4096];
	json_error_t je;
	json_t *j;
	int r;

	if ((r = record_path(m, key, p, sizeof p)) < 0)
		return r;
	j = json_load_file(p, 0, &je);
	if (!j)
		return -ENOENT;
	r = idem_record_from_json(j, key, now_s(), manager_config(m)->api.idempotency_ttl_s, ret);
	json_decref(j);
	return r;
}

int idempotency_store(Manager *m, const char *key, const IdemRecord *rec) {
	char p[4096], dir[4096];
	json_t *j;
	int r;

	if ((r = record_path(m, key, p, sizeof p)) < 0)
		return r;
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
		if (!j || expired(j, now_s(), manager_config(m)->api.idempotency_ttl_s)) {
			if (unlink(p) == 0)
				n++;
		}
		json_decref(j);
	}
	closedir(d);
	return n;
}
