/* SPDX-License-Identifier: MIT */
/*
 * Console on the UART the cell config names, and a small printf for it
 * and for buffers.
 *
 * Jailhouse copies the cell config's console descriptor into the comm
 * region (struct jailhouse_console at +24, ../shared/jailhouse/FACTS.md
 * sections 1 and 4): a PL011 on the qemu-arm64 cells, the Raspberry Pi 4's
 * mini UART as an 8250 on the rpi4 ones. The UART must also be a memory
 * region of the cell, or the first access fails the cell.
 */
#include "internal.h"

/* struct jailhouse_console, at JHCOMM_CONSOLE of the comm region. */
#define JHCON_ADDRESS 0		/* u64 */
#define JHCON_TYPE 12		/* u16 */
#define JHCON_FLAGS 14		/* u16 */
#define JHCON_DIVIDER 16	/* u32 */
#define JHCON_TYPE_8250 2
#define JHCON_TYPE_PL011 3
#define JHCON_FLAG_ACCESS_MMIO 0x1	/* else port I/O, which arm64 lacks */
#define JHCON_FLAG_REGDIST_4 0x2	/* else registers 1 byte apart */

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

/* 8250 registers, in register numbers (times the register distance). */
#define UART8250_THR 0
#define UART8250_DLL 0	/* with LCR.DLAB */
#define UART8250_DLM 1	/* with LCR.DLAB */
#define UART8250_LCR 3
#define UART8250_LSR 5
#define UART8250_LCR_8N1 0x03
#define UART8250_LCR_DLAB 0x80
#define UART8250_LSR_THRE (1u << 5)

/* Bounded so a UART that never drains cannot hang the inmate; a real one
 * frees a FIFO slot long before. */
#define UART_SPIN_MAX 100000

enum uart_type {
	UART_NONE,	/* no output; also before console_init() */
	UART_PL011,
	UART_8250,
};

static struct {
	enum uart_type type;
	uintptr_t base;
	/* 8250: log2 of the register distance; with 4 (REGDIST_4) every
	 * access is 32 bits wide, with 1 byte-wide. */
	unsigned int shift;
} uart;

static uint32_t uart8250_in(unsigned int reg)
{
	const uintptr_t a = uart.base + ((uintptr_t)reg << uart.shift);

	return uart.shift ? mmio_read32(a) : mmio_read8(a);
}

static void uart8250_out(unsigned int reg, uint32_t v)
{
	const uintptr_t a = uart.base + ((uintptr_t)reg << uart.shift);

	if (uart.shift)
		mmio_write32(a, v);
	else
		mmio_write8(a, (uint8_t)v);
}

/* The UART of the comm region's console descriptor. Returns its divider
 * (0: keep the line settings). */
static uint32_t uart_from_jh_comm(uintptr_t jh)
{
	const uintptr_t con = jh + JHCOMM_CONSOLE;
	const uint64_t address = mmio_read64(con + JHCON_ADDRESS);
	const uint16_t type = mmio_read16(con + JHCON_TYPE);
	const uint16_t flags = mmio_read16(con + JHCON_FLAGS);

	uart.type = UART_NONE;
	if (!address || !(flags & JHCON_FLAG_ACCESS_MMIO))
		return 0;
	uart.base = (uintptr_t)address;
	switch (type) {
	case JHCON_TYPE_PL011:
		uart.type = UART_PL011;
		break;
	case JHCON_TYPE_8250:
		uart.type = UART_8250;
		uart.shift = flags & JHCON_FLAG_REGDIST_4 ? 2 : 0;
		break;
	default:
		break;
	}
	return mmio_read32(con + JHCON_DIVIDER);
}

static void pl011_init(void)
{
	/* The UART is the root cell's too: leave an enabled one as it is. */
	if (mmio_read32(uart.base + PL011_CR) & PL011_CR_UARTEN)
		return;
	mmio_write32(uart.base + PL011_LCR_H,
		     PL011_LCR_H_WLEN8 | PL011_LCR_H_FEN);
	mmio_write32(uart.base + PL011_CR,
		     PL011_CR_UARTEN | PL011_CR_TXE | PL011_CR_RXE);
}

/* The root cell's Linux set the line up; only a divider in the cell
 * config asks for it again, as Jailhouse's own inmates do: 8N1 at the
 * divider, for the clock the config's author knew. */
static void uart8250_init(uint32_t divider)
{
	if (!divider)
		return;
	uart8250_out(UART8250_LCR, UART8250_LCR_DLAB);
	uart8250_out(UART8250_DLL, divider & 0xff);
	uart8250_out(UART8250_DLM, (divider >> 8) & 0xff);
	uart8250_out(UART8250_LCR, UART8250_LCR_8N1);
}

/*
 * The console ring behind a comm region bigger than a page (warden/comm.h):
 * the daemon says the region's size in `region_size` before the cell
 * starts. Everything printed goes there too, so that the API shows this
 * cell's own output where cells share a UART. Device memory (MMU off): byte
 * stores for the data, one aligned store for `head` after a barrier.
 */
static volatile struct warden_console *ring;
static uint32_t ring_size;
static uint64_t ring_head;

static void ring_init(void)
{
	volatile struct warden_comm *c = inmate_env.comm;
	uint32_t region = c->region_size;
	volatile struct warden_console *r;
	uint32_t size;

	if (region <= WARDEN_CONSOLE_OFFSET + sizeof(struct warden_console))
		return;
	r = (volatile struct warden_console *)((uintptr_t)c + WARDEN_CONSOLE_OFFSET);
	size = region - WARDEN_CONSOLE_OFFSET - (uint32_t)sizeof(struct warden_console);
	/* a ring the last boot left with the same size goes on */
	if (r->magic != WARDEN_CONSOLE_MAGIC || r->size != size) {
		r->head = 0;
		r->size = size;
		comm_release();
		r->magic = WARDEN_CONSOLE_MAGIC;
	}
	ring_head = r->head;
	ring_size = size;
	ring = r;
}

static void ring_put(char c)
{
	ring->data[ring_head++ % ring_size] = (uint8_t)c;
}

void console_init(void)
{
	const uintptr_t jh = jh_comm_base();
	uint32_t divider = 0;

	if (jh) {
		divider = uart_from_jh_comm(jh);
	} else {
		uart.type = UART_PL011;
		uart.base = INMATE_UART_BASE;
	}
	if (uart.type == UART_PL011)
		pl011_init();
	else if (uart.type == UART_8250)
		uart8250_init(divider);
	ring_init();
}

static void uart_put(char c)
{
	int spin = UART_SPIN_MAX;

	switch (uart.type) {
	case UART_PL011:
		while ((mmio_read32(uart.base + PL011_FR) & PL011_FR_TXFF) &&
		       --spin)
			cpu_relax();
		mmio_write32(uart.base + PL011_DR, (uint8_t)c);
		break;
	case UART_8250:
		while (!(uart8250_in(UART8250_LSR) & UART8250_LSR_THRE) &&
		       --spin)
			cpu_relax();
		uart8250_out(UART8250_THR, (uint8_t)c);
		break;
	case UART_NONE:
		break;
	}
}

static void putc_one(char c)
{
	if (ring)
		ring_put(c);
	if (uart.type == UART_NONE)
		return;
	if (c == '\n')
		uart_put('\r');
	uart_put(c);
}

/* The ring's head is published once per call, not per byte. */
static void ring_publish(void)
{
	if (ring) {
		comm_release();
		ring->head = ring_head;
	}
}

void console_putc(char c)
{
	putc_one(c);
	ring_publish();
}

void console_puts(const char *s)
{
	while (*s)
		putc_one(*s++);
	ring_publish();
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
