/* SPDX-License-Identifier: MIT */
#include "auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "macro.h"

typedef struct Token {
	char name[AUTH_NAME_MAX];
	HttpRole role;
	uint8_t hash[SHA256_LEN];
} Token;

struct Tokens {
	Token *v;
	size_t n;
};

const char *http_role_to_string(HttpRole r) {
	switch (r) {
	case HTTP_ROLE_MONITOR: return "monitor";
	case HTTP_ROLE_OPERATOR: return "operator";
	default: return "none";
	}
}

void sha256_hex(const uint8_t digest[SHA256_LEN], char hex[2 * SHA256_LEN + 1]) {
	for (size_t i = 0; i < SHA256_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
}

int sha256_from_hex(const char *hex, uint8_t digest[SHA256_LEN]) {
	if (strlen(hex) != 2 * SHA256_LEN)
		return -EINVAL;
	for (size_t i = 0; i < SHA256_LEN; i++) {
		int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		digest[i] = (uint8_t)(hi * 16 + lo);
	}
	return 0;
}

static int b64val(char c) {
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* "sha-256=:BASE64:" possibly among other digests ("sha-512=:...:, ...").
 * A 32-byte digest is 43 base64 characters and one '='. */
int content_digest_parse(const char *header, uint8_t digest[SHA256_LEN]) {
	const char *p = header;
	uint32_t acc = 0;
	int bits = 0;
	size_t n = 0;

	for (;;) {
		while (*p == ' ' || *p == ',')
			p++;
		if (*p == 0)
			return -ENOENT;
		if (strncasecmp(p, "sha-256=:", 9) == 0)
			break;
		p = strchr(p, ',');
		if (!p)
			return -ENOENT;
	}
	for (p += 9; *p && *p != ':' && *p != '='; p++) {
		int v = b64val(*p);
		if (v < 0)
			return -EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n >= SHA256_LEN)
				return -EINVAL;
			digest[n++] = (uint8_t)(acc >> bits);
		}
	}
	while (*p == '=')
		p++;
	if (*p != ':' || n != SHA256_LEN)
		return -EINVAL;
	return 0;
}

int tokens_load(const char *path, Tokens **ret, char *err, size_t err_size) {
	_cleanup_fclose_ FILE *f = NULL;
	Tokens *t;
	char line[512];
	unsigned lineno = 0;

	f = fopen(path, "re");
	if (!f) {
		snprintf(err, err_size, "%s: %s", path, strerror(errno));
		return -errno;
	}
	t = calloc(1, sizeof *t);
	if (!t)
		return -ENOMEM;
	while (fgets(line, sizeof line, f)) {
		char name[AUTH_NAME_MAX + 1], role[16], hex[80], extra[2];
		Token *nv;
		int k;

		lineno++;
		line[strcspn(line, "#\n")] = 0;
		k = sscanf(line, "%48s %15s %79s %1s", name, role, hex, extra);
		if (k <= 0)
			continue;
		nv = realloc(t->v, (t->n + 1) * sizeof *t->v);
		if (!nv) {
			tokens_free(t);
			return -ENOMEM;
		}
		t->v = nv;
		Token *tok = &t->v[t->n];
		if (k != 3 || strlen(name) >= AUTH_NAME_MAX) {
			snprintf(err, err_size, "%s:%u: expected \"NAME ROLE SHA256HEX\"", path, lineno);
			goto fail;
		}
		if (strcmp(role, "monitor") == 0)
			tok->role = HTTP_ROLE_MONITOR;
		else if (strcmp(role, "operator") == 0)
			tok->role = HTTP_ROLE_OPERATOR;
		else {
			snprintf(err, err_size, "%s:%u: role \"%s\" is neither monitor nor operator", path, lineno, role);
			goto fail;
		}
		if (sha256_from_hex(hex, tok->hash) < 0) {
			snprintf(err, err_size, "%s:%u: the third field must be a SHA-256 in hex (64 digits)", path,
			         lineno);
			goto fail;
		}
		snprintf(tok->name, sizeof tok->name, "%s", name);
		t->n++;
	}
	*ret = t;
	return 0;
fail:
	tokens_free(t);
	return -EINVAL;
}

Tokens *tokens_free(Tokens *t) {
	if (!t)
		return NULL;
	explicit_bzero(t->v, t->n * sizeof *t->v);
	free(t->v);
	free(t);
	return NULL;
}

size_t tokens_count(const Tokens *t) {
	return t ? t->n : 0;
}

int tokens_check(void *userdata, const char *token, char *name, size_t name_size, HttpRole *role) {
	Tokens *t = userdata;
	uint8_t h[SHA256_LEN];
	const Token *found = NULL;

	if (!t || gnutls_hash_fast(GNUTLS_DIG_SHA256, token, strlen(token), h) < 0)
		return -EACCES;
	/* Compare against every entry, whole digests, no early exit. */
	for (size_t i = 0; i < t->n; i++) {
		uint8_t diff = 0;
		for (size_t j = 0; j < SHA256_LEN; j++)
			diff |= (uint8_t)(h[j] ^ t->v[i].hash[j]);
		if (diff == 0 && !found)
			found = &t->v[i];
	}
	if (!found)
		return -EACCES;
	snprintf(name, name_size, "%s", found->name);
	*role = found->role;
	return 0;
}
