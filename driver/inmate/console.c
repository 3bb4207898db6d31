/* SPDX-License-Identifier: MIT */
/*
 * Console on the 16550 UART, and a small printf for it and for buffers.
 */
#include "internal.h"

#define UART_THR 0
#define UART_IER 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_DLL 0
#define UART_DLM 1
#define UART_LCR_DLAB 0x80
#define UART_LCR_8N1 0x03
#define UART_LSR_THRE 0x20

/* Bounded so a missing UART (all-ones or all-zeros reads) cannot hang the
 * inmate; a real one drains a byte long before. */
#define UART_SPIN_MAX 100000

void console_init(void)
{
	const uint16_t base = WARDEN_PORT_UART;

	/* 115200 8N1, FIFOs on, no interrupts. Emulated UARTs ignore the
	 * rate; real ones need it. */
	outb(base + UART_IER, 0);
	outb(base + UART_LCR, UART_LCR_DLAB);
	outb(base + UART_DLL, 1);
	outb(base + UART_DLM, 0);
	outb(base + UART_LCR, UART_LCR_8N1);
	outb(base + UART_FCR, 0x07);
	outb(base + UART_MCR, 0x03);
}

void console_putc(char c)
{
	if (!inmate_env.uart_fast) {
		int spin = UART_SPIN_MAX;

		while (!(inb(WARDEN_PORT_UART + UART_LSR) & UART_LSR_THRE) &&
		       --spin)
			cpu_relax();
	}
	outb(WARDEN_PORT_UART + UART_THR, (uint8_t)c);
}

void console_write(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\n')
			console_putc('\r');
		console_putc(s[i]);
	}
}

void console_puts(const char *s)
{
	console_write(s, strlen(s));
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
	if (s->console) {
		if (c == '\n')
			console_putc('\r');
		console_putc(c);
	} else if (s->len + 1 < s->size) {
		s->buf[s->len] = c;
	}
	s->len++;
}

static void sink_pad(struct sink *s, char c, int n)
{
	while (n-- > 0)
		sink_put(s, c);
}

static void sink_str(struct sink *s, const char *str, int width, bool left)
{
	int n = (int)strlen(str);

	if (!left)
		sink_pad(s, ' ', width - n);
	while (*str)
		sink_put(s, *str++);
	if (left)
		sink_pad(s, ' ', width - n);
}

static void sink_num(struct sink *s, uint64_t v, bool neg, unsigned int base,
		     bool upper, int width, bool left, bool zero)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char tmp[24];
	int n = 0, len;

	do {
		tmp[n++] = digits[v % base];
		v /= base;
	} while (v);
	len = n + neg;

	if (!left && !zero)
		sink_pad(s, ' ', width - len);
	if (neg)
		sink_put(s, '-');
	if (!left && zero)
		sink_pad(s, '0', width - len);
	while (n)
		sink_put(s, tmp[--n]);
	if (left)
		sink_pad(s, ' ', width - len);
}

static void format(struct sink *s, const char *fmt, va_list ap)
{
	while (*fmt) {
		bool left = false, zero = false;
		int width = 0, lng = 0;
		uint64_t u;
		int64_t d;
		char c = *fmt++;

		if (c != '%') {
			sink_put(s, c);
			continue;
		}
		for (;; fmt++) {
			if (*fmt == '-')
				left = true;
			else if (*fmt == '0')
				zero = true;
			else
				break;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		for (;; fmt++) {
			if (*fmt == 'l')
				lng++;
			else if (*fmt == 'z')
				lng = 2;
			else
				break;
		}

		switch ((c = *fmt++)) {
		case 'c':
			sink_put(s, (char)va_arg(ap, int));
			break;
		case 's': {
			const char *str = va_arg(ap, const char *);

			sink_str(s, str ? str : "(null)", width, left);
			break;
		}
		case 'd':
		case 'i':
			d = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			u = d < 0 ? -(uint64_t)d : (uint64_t)d;
			sink_num(s, u, d < 0, 10, false, width, left, zero);
			break;
		case 'u':
		case 'x':
		case 'X':
			u = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned int);
			sink_num(s, u, false, c == 'u' ? 10 : 16, c == 'X',
				 width, left, zero);
			break;
		case 'p':
			sink_put(s, '0');
			sink_put(s, 'x');
			sink_num(s, (uintptr_t)va_arg(ap, void *), false, 16,
				 false, width, left, zero);
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

int vsnprintk(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct sink s = { .buf = buf, .size = size };

	format(&s, fmt, ap);
	if (size)
		buf[s.len < size ? s.len : size - 1] = '\0';
	return (int)s.len;
}

int snprintk(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintk(buf, size, fmt, ap);
	va_end(ap);
	return r;
}
