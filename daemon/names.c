/* SPDX-License-Identifier: MIT */
#include <stdbool.h>
#include <string.h>

#include "names.h"

/* Not <ctype.h>: its classes follow the locale, the contract does not. */
static bool is_lower_or_digit(char c) {
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c) {
	return is_lower_or_digit(c) || (c >= 'A' && c <= 'Z');
}

bool names_cell_valid(const char *s) {
	size_t n = strlen(s);

	if (n < 1 || n > CELL_NAME_MAX || !is_lower_or_digit(s[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!is_lower_or_digit(s[i]) && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

bool names_image_valid(const char *s) {
	size_t n = strlen(s);

	/* A leading '.' also keeps out ".", ".." and the store's .upload-*. */
	if (n < 1 || n > IMAGE_NAME_MAX || s[0] == '.' || strstr(s, ".tmp."))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

bool names_idempotency_key_valid(const char *s) {
	size_t n = strlen(s);

	if (n < 1 || n > IDEMPOTENCY_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return false;
	return true;
}
