/* SPDX-License-Identifier: MIT */
/*
 * Bearer tokens for TCP listeners, and the SHA-256 helpers uploads share.
 *
 * The tokens file has one token per line, "NAME ROLE SHA256HEX", where ROLE
 * is monitor or operator and SHA256HEX is the SHA-256 of the token itself:
 * the daemon never holds a token in the clear. '#' starts a comment.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "http.h"

#define AUTH_NAME_MAX 48
#define SHA256_LEN 32

typedef struct Tokens Tokens;

/* On a syntax error returns -EINVAL and names the line in err. */
int tokens_load(const char *path, Tokens **ret, char *err, size_t err_size);
Tokens *tokens_free(Tokens *t);
size_t tokens_count(const Tokens *t);
/* HttpAuthFn: 0 and the token's name and role, or -EACCES. */
int tokens_check(void *userdata, const char *token, char *name, size_t name_size, HttpRole *role);

const char *http_role_to_string(HttpRole r);

void sha256_hex(const uint8_t digest[SHA256_LEN], char hex[2 * SHA256_LEN + 1]);
int sha256_from_hex(const char *hex, uint8_t digest[SHA256_LEN]);
/* RFC 9530 Content-Digest: finds "sha-256=:BASE64:" in the header. */
int content_digest_parse(const char *header, uint8_t digest[SHA256_LEN]);
