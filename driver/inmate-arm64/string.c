/* SPDX-License-Identifier: MIT */
/*
 * The string functions gcc may call even in freestanding code. Byte loops:
 * with the MMU off every access is to device memory, where a wide access
 * must be aligned, and these are never hot. meson.build compiles with
 * -fno-tree-loop-distribute-patterns so that gcc cannot turn a loop back
 * into a call to the function it sits in.
 */
#include "inmate.h"

void *memset(void *s, int c, size_t n)
{
	unsigned char *d = s;

	while (n--)
		*d++ = (unsigned char)c;
	return s;
}

void *memcpy(void *dst, const void *src, size_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;

	while (n--)
		*d++ = *s++;
	return dst;
}

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

size_t strnlen(const char *s, size_t max)
{
	size_t n = 0;

	while (n < max && s[n])
		n++;
	return n;
}
