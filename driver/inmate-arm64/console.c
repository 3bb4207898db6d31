/* SPDX-License-Identifier: MIT */
/*
 * Console on the PL011, and a small printf for it and for buffers.
 */
#include "internal.h"

#define PL011_DR 0x00
#define PL011_FR 0x18
#define PL011_LCR_H 0x2c
#define PL011_CR 0x30
#define PL011_FR_TXFF (1u << 5)
#define PL011_LCR_H_FEN (1u << 4)
#define PL011_LCR_H_WLEN8 (3u << 5)
#define PL011_CR_UARTEN (1u << 0)
#define PL011_CR_TXE (1u << 8)
#define PL011_CR_RXE (1u << 9)

/* Bounded so a UART that never drains cannot hang the inmate; a real one
 * frees a FIFO slot long before. */
#define UART_SPIN_MAX 100000

void console_init(void)
{
	const uintptr_t base = INMATE_UART_BASE;

	/* The UART is the root cell's too: leave an enabled one as it is. */
	if (mmio_read32(base + PL011_CR) & PL011_CR_UARTEN)
		return;
	mmio_write32(base + PL011_LCR_H, PL011_LCR_H_WLEN8 | PL011_LCR_H_FEN);
	mmio_write32(base + PL011_CR,
		     PL011_CR_UARTEN | PL011_CR_TXE | PL011_CR_RXE);
}

static void uart_put(char c)
{
	int spin = UART_SPIN_MAX;

	while ((mmio_read32(INMATE_UART_BASE + PL011_FR) & PL011_FR_TXFF) &&
	       --spin)
		cpu_relax();
	mmio_write32(INMATE_UART_BASE + PL011_DR, (uint8_t)c);
}

void console_putc(char c)
{
	if (c == '\n')
		uart_put('\r');
	uart_put(c);
}

void console_puts(const char *s)
{
	while (*s)
		console_putc(*s++);
}

/* ---- formatter -------------------------------------------------------- */

struct sink {
	bool console;	/* else: the buffer */
	char *buf;
	size_t size;
	size_t len;	/* what the whole output needs */
};

static void sink_put(struct sink *s, char c)
{
	if (s->console)
		console_putc(c);
	else if (s->len + 1 < s->size)
		s->buf[s->len] = c;
	s->len++;
}

static void sink_num(struct sink *s, uint64_t v, bool neg, unsigned int base,
		     int width, char pad)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);

	width -= n + neg;
	if (neg && pad == '0')
		sink_put(s, '-');
	while (width-- > 0)
		sink_put(s, pad);
	if (neg && pad != '0')
		sink_put(s, '-');
	while (n)
		sink_put(s, tmp[--n]);
}

static void format(struct sink *s, const char *fmt, va_list ap)
{
	while (*fmt) {
		char c = *fmt++, pad = ' ';
		int width = 0, lng = 0;
		const char *str;
		uint64_t u;
		int64_t d;

		if (c != '%') {
			sink_put(s, c);
			continue;
		}
		if (*fmt == '0') {
			pad = '0';
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z') {
			lng++;
			fmt++;
		}

		switch ((c = *fmt++)) {
		case 'c':
			sink_put(s, (char)va_arg(ap, int));
			break;
		case 's':
			str = va_arg(ap, const char *);
			for (str = str ? str : "(null)"; *str; str++)
				sink_put(s, *str);
			break;
		case 'd':
		case 'i':
			d = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			u = d < 0 ? -(uint64_t)d : (uint64_t)d;
			sink_num(s, u, d < 0, 10, width, pad);
			break;
		case 'u':
		case 'x':
			u = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned int);
			sink_num(s, u, false, c == 'u' ? 10 : 16, width, pad);
			break;
		case 'p':
			sink_put(s, '0');
			sink_put(s, 'x');
			sink_num(s, (uintptr_t)va_arg(ap, void *), false, 16,
				 width, pad);
			break;
		case '%':
			sink_put(s, '%');
			break;
		case '\0':
			return; /* a lone '%' at the end */
		default:
			sink_put(s, '%');
			sink_put(s, c);
			break;
		}
	}
}

int vprintk(const char *fmt, va_list ap)
{
	struct sink s = { .console = true };

	format(&s, fmt, ap);
	return (int)s.len;
}

int printk(const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vprintk(fmt, ap);
	va_end(ap);
	return r;
}

int snprintk(char *buf, size_t size, const char *fmt, ...)
{
	struct sink s = { .buf = buf, .size = size };
	va_list ap;

	va_start(ap, fmt);
	format(&s, fmt, ap);
	va_end(ap);
	if (size)
		buf[s.len < size ? s.len : size - 1] = '\0';
	return (int)s.len;
}
