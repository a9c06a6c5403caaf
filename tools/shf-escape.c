// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-escape.c - escape names and strings for printing (shf-escape.h).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shf-escape.h"

/* Length of the UTF-8 character at s (1 to 4) if it is valid and no C1
 * control, else 0. */
static size_t utf8_len(const unsigned char *s)
{
	unsigned c = s[0];
	size_t n, i;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 ||
						   cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
		return 0;
	return n;
}

/* 0 if byte c at its place needs no escape. */
static int plain(const unsigned char *s, size_t *len)
{
	if (*s == '\\' || *s < 0x20 || *s == 0x7f)
		return 0;
	*len = utf8_len(s);
	return *len != 0;
}

/* The escape of byte c (one that is not plain) at out: its length. */
static size_t esc_byte(char *out, unsigned char c)
{
	out[0] = '\\';
	switch (c) {
	case '\\': out[1] = '\\'; return 2;
	case '\n': out[1] = 'n'; return 2;
	case '\t': out[1] = 't'; return 2;
	case '\r': out[1] = 'r'; return 2;
	case 0x1b: out[1] = 'e'; return 2;
	default:
		snprintf(out + 1, 4, "x%02x", c);
		return 4;
	}
}

const char *shf_esc(const char *str)
{
	static char *bufs[4];
	static unsigned turn;
	const unsigned char *s = (const unsigned char *)str;
	size_t n, len, at = 0;
	char *out;

	for (n = 0; s[n]; n += len)
		if (!plain(s + n, &len))
			break;
	if (!s[n])
		return str;
	n = strlen(str);
	out = realloc(bufs[turn], 4 * n + 1); /* "\xNN" per byte at most */
	if (!out)
		return "?";
	bufs[turn] = out;
	turn = (turn + 1) % 4;
	while (*s) {
		if (plain(s, &len)) {
			memcpy(out + at, s, len);
			at += len;
			s += len;
			continue;
		}
		at += esc_byte(out + at, *s++);
	}
	out[at] = '\0';
	return out;
}

void shf_esc_write(FILE *f, const void *p, size_t n, int lines)
{
	const unsigned char *s = p;
	unsigned char c[5];
	size_t i = 0, len, k;
	char e[5];

	while (i < n) {
		/* utf8_len() reads up to 4 bytes, and stops at a NUL */
		memset(c, 0, sizeof(c));
		memcpy(c, s + i, n - i < 4 ? n - i : 4);
		if (lines && (c[0] == '\n' || c[0] == '\t')) {
			fputc(c[0], f);
			i++;
		} else if (c[0] && plain(c, &len) && len <= n - i) {
			fwrite(s + i, 1, len, f);
			i += len;
		} else {
			k = esc_byte(e, s[i++]);
			fwrite(e, 1, k, f);
		}
	}
}

void shf_json_str(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t len;

	fputc('"', f);
	while (*s) {
		if (*s == '"' || *s == '\\') {
			fprintf(f, "\\%c", *s++);
		} else if (*s < 0x20 || *s == 0x7f || !(len = utf8_len(s))) {
			fprintf(f, "\\u%04x", *s++); /* not UTF-8: as Latin-1 */
		} else {
			fwrite(s, 1, len, f);
			s += len;
		}
	}
	fputc('"', f);
}

void shf_prom_label(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t len;

	while (*s) {
		if (*s == '"' || *s == '\\') {
			fprintf(f, "\\%c", *s++);
		} else if (*s == '\n') {
			fputs("\\n", f);
			s++;
		} else if (*s < 0x20 || *s == 0x7f || !(len = utf8_len(s))) {
			fputc('?', f);
			s++;
		} else {
			fwrite(s, 1, len, f);
			s += len;
		}
	}
}
