/* SPDX-License-Identifier: MIT */
/*
 * "key=value" words from the inmate's argument string. Words without '='
 * (QEMU puts the kernel's path first) are skipped; a later word wins over
 * an earlier one with the same key, as on a kernel command line.
 */
#include "internal.h"

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Parse a whole number word [s, end): decimal or 0x-prefixed hex. */
static bool parse_u64(const char *s, const char *end, uint64_t *ret)
{
	unsigned int base = 10;
	uint64_t v = 0;

	if (end - s > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (s == end)
		return false;
	for (; s < end; s++) {
		unsigned int d;

		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			return false;
		if (v > (UINT64_MAX - d) / base)
			return false;
		v = v * base + d;
	}
	*ret = v;
	return true;
}

uint64_t args_get_u64(const char *key, uint64_t def)
{
	const char *p = inmate_args();
	size_t klen = strlen(key);
	uint64_t result = def;

	while (*p) {
		const char *word, *end;

		while (is_space(*p))
			p++;
		word = p;
		while (*p && !is_space(*p))
			p++;
		end = p;

		if ((size_t)(end - word) > klen && word[klen] == '=' &&
		    !memcmp(word, key, klen)) {
			uint64_t v;

			result = parse_u64(word + klen + 1, end, &v) ? v : def;
		}
	}
	return result;
}
