// SPDX-License-Identifier: MIT
/* cbpf.c - a classic BPF interpreter: check a program once, run it often
 *
 * cbpf.h has the rules. The opcodes are those of <linux/filter.h>, written
 * out here so the file builds alone (the fuzzer, native/fuzz/fuzz_cbpf.c).
 */
#include <stddef.h>
#include <stdint.h>

#include "cbpf.h"

/* classes */
#define C_LD	0x00
#define C_LDX	0x01
#define C_ST	0x02
#define C_STX	0x03
#define C_ALU	0x04
#define C_JMP	0x05
#define C_RET	0x06
#define C_MISC	0x07
/* sizes and modes of loads */
#define S_W	0x00
#define S_H	0x08
#define S_B	0x10
#define M_IMM	0x00
#define M_ABS	0x20
#define M_IND	0x40
#define M_MEM	0x60
#define M_LEN	0x80
#define M_MSH	0xa0
/* operations of ALU and JMP, and the operand's source */
#define O_ADD	0x00
#define O_SUB	0x10
#define O_MUL	0x20
#define O_DIV	0x30
#define O_OR	0x40
#define O_AND	0x50
#define O_LSH	0x60
#define O_RSH	0x70
#define O_NEG	0x80
#define O_MOD	0x90
#define O_XOR	0xa0
#define J_JA	0x00
#define J_JEQ	0x10
#define J_JGT	0x20
#define J_JGE	0x30
#define J_JSET	0x40
#define SRC_K	0x00
#define SRC_X	0x08
/* RET's value, MISC's operations */
#define R_K	0x00
#define R_A	0x10
#define MISC_TAX 0x00
#define MISC_TXA 0x80

#define ALU2(op) [C_ALU | (op) | SRC_K] = 1, [C_ALU | (op) | SRC_X] = 1
#define JMP2(op) [C_JMP | (op) | SRC_K] = 1, [C_JMP | (op) | SRC_X] = 1

/* every opcode the kernel's bpf_check_classic() takes, ancillary aside */
static const uint8_t cbpf_known[256] = {
	[C_LD | S_W | M_ABS] = 1, [C_LD | S_H | M_ABS] = 1,
	[C_LD | S_B | M_ABS] = 1, [C_LD | S_W | M_IND] = 1,
	[C_LD | S_H | M_IND] = 1, [C_LD | S_B | M_IND] = 1,
	[C_LD | S_W | M_LEN] = 1, [C_LD | S_W | M_IMM] = 1,
	[C_LD | S_W | M_MEM] = 1,
	[C_LDX | S_W | M_IMM] = 1, [C_LDX | S_W | M_MEM] = 1,
	[C_LDX | S_W | M_LEN] = 1, [C_LDX | S_B | M_MSH] = 1,
	[C_ST] = 1, [C_STX] = 1,
	ALU2(O_ADD), ALU2(O_SUB), ALU2(O_MUL), ALU2(O_DIV), ALU2(O_MOD),
	ALU2(O_AND), ALU2(O_OR), ALU2(O_XOR), ALU2(O_LSH), ALU2(O_RSH),
	[C_ALU | O_NEG] = 1,
	[C_JMP | J_JA] = 1, JMP2(J_JEQ), JMP2(J_JGT), JMP2(J_JGE), JMP2(J_JSET),
	[C_RET | R_K] = 1, [C_RET | R_A] = 1,
	[C_MISC | MISC_TAX] = 1, [C_MISC | MISC_TXA] = 1,
};

static const char *const cbpf_error_names[CBPF__E_MAX] = {
	[CBPF_OK] = "ok",
	[CBPF_E_LENGTH] = "length",
	[CBPF_E_OPCODE] = "unknown opcode",
	[CBPF_E_JUMP] = "jump out of range",
	[CBPF_E_MEM] = "scratch memory index out of range",
	[CBPF_E_DIV_ZERO] = "division by zero",
	[CBPF_E_SHIFT] = "shift by 32 or more",
	[CBPF_E_NO_RET] = "does not end in a return",
};

/**
 * cbpf_error_name() - what an enum cbpf_error says, in words
 * @err:	enum cbpf_error
 *
 * Return: a static string ("?" for an unknown value)
 */
const char *cbpf_error_name(int err)
{
	if (err < 0 || err >= CBPF__E_MAX)
		return "?";
	return cbpf_error_names[err];
}

/**
 * cbpf_check() - may this program run? (cbpf.h, rule 1)
 * @prog:	its instructions
 * @len:	their number
 * @bad:	out: the index of the first instruction refused (@len - 1 for
 *		CBPF_E_NO_RET, 0 for CBPF_E_LENGTH); may be NULL
 *
 * Return: CBPF_OK (0), or the enum cbpf_error of the first refused
 * instruction
 */
int cbpf_check(const struct cbpf_insn *prog, uint32_t len, uint32_t *bad)
{
	uint32_t pc;
	int err = CBPF_OK;

	if (bad)
		*bad = 0;
	if (!prog || len == 0 || len > CBPF_MAXINSNS)
		return CBPF_E_LENGTH;
	for (pc = 0; pc < len; pc++) {
		const struct cbpf_insn *i = &prog[pc];
		uint32_t left = len - pc - 1;	/* instructions after this one */

		if (i->code > 0xff || !cbpf_known[i->code]) {
			err = CBPF_E_OPCODE;
			break;
		}
		switch (i->code) {
		case C_LD | S_W | M_MEM:
		case C_LDX | S_W | M_MEM:
		case C_ST:
		case C_STX:
			if (i->k >= CBPF_MEMWORDS)
				err = CBPF_E_MEM;
			break;
		case C_ALU | O_DIV | SRC_K:
		case C_ALU | O_MOD | SRC_K:
			if (i->k == 0)
				err = CBPF_E_DIV_ZERO;
			break;
		case C_ALU | O_LSH | SRC_K:
		case C_ALU | O_RSH | SRC_K:
			if (i->k >= 32)
				err = CBPF_E_SHIFT;
			break;
		case C_JMP | J_JA:
			if (i->k >= left)
				err = CBPF_E_JUMP;
			break;
		default:
			if ((i->code & 0x07) == C_JMP &&
			    (i->jt >= left || i->jf >= left))
				err = CBPF_E_JUMP;
			break;
		}
		if (err)
			break;
	}
	if (!err && (prog[len - 1].code & 0x07) != C_RET) {
		err = CBPF_E_NO_RET;
		pc = len - 1;
	}
	if (err && bad)
		*bad = pc;
	return err;
}

/**
 * cbpf_load() - @n (1, 2 or 4) bytes of the packet at @off, big-endian
 * @head:	the packet's first piece
 * @head_len:	its length
 * @tail:	the rest
 * @tail_len:	its length
 * @off:	offset in the whole packet
 * @n:		bytes to load
 * @out:	the value, out
 *
 * Return: 0, or -1 if any of the bytes is past the packet (rule 3)
 */
static inline int cbpf_load(const uint8_t *head, uint32_t head_len,
			    const uint8_t *tail, uint32_t tail_len,
			    uint32_t off, uint32_t n, uint32_t *out)
{
	uint64_t end = (uint64_t)off + n;
	uint32_t v = 0;

	if (end > (uint64_t)head_len + tail_len)
		return -1;
	if (end <= head_len) {		/* the usual case: all in the head */
		for (uint32_t i = 0; i < n; i++)
			v = v << 8 | head[off + i];
	} else {
		for (uint32_t i = 0; i < n; i++) {
			uint32_t o = off + i;

			v = v << 8 | (o < head_len ? head[o] :
				      tail[o - head_len]);
		}
	}
	*out = v;
	return 0;
}

static const uint8_t cbpf_size_bytes[4] = { 4, 2, 1, 0 };

/**
 * cbpf_run() - run a checked program on a packet (cbpf.h, rules 2 to 4)
 * @prog:	a program cbpf_check() accepted
 * @head:	the packet's first bytes
 * @head_len:	their number
 * @tail:	the rest of the packet (may be NULL if @tail_len is 0)
 * @tail_len:	its length
 *
 * Return: the program's return value: 0 refuses the packet, another
 * value takes at most that many bytes of it
 */
uint32_t cbpf_run(const struct cbpf_insn *prog, const uint8_t *head,
		  uint32_t head_len, const uint8_t *tail, uint32_t tail_len)
{
	uint32_t mem[CBPF_MEMWORDS] = { 0 };
	uint32_t a = 0, x = 0, v, wlen = head_len + tail_len;
	const struct cbpf_insn *i = prog;

	for (;; i++) {
		switch (i->code) {
		case C_LD | S_W | M_ABS:
		case C_LD | S_H | M_ABS:
		case C_LD | S_B | M_ABS:
			if (cbpf_load(head, head_len, tail, tail_len, i->k,
				      cbpf_size_bytes[(i->code >> 3) & 3], &a))
				return 0;
			break;
		case C_LD | S_W | M_IND:
		case C_LD | S_H | M_IND:
		case C_LD | S_B | M_IND:
			if (cbpf_load(head, head_len, tail, tail_len, x + i->k,
				      cbpf_size_bytes[(i->code >> 3) & 3], &a))
				return 0;
			break;
		case C_LD | S_W | M_LEN:
			a = wlen;
			break;
		case C_LD | S_W | M_IMM:
			a = i->k;
			break;
		case C_LD | S_W | M_MEM:
			a = mem[i->k];
			break;
		case C_LDX | S_W | M_IMM:
			x = i->k;
			break;
		case C_LDX | S_W | M_MEM:
			x = mem[i->k];
			break;
		case C_LDX | S_W | M_LEN:
			x = wlen;
			break;
		case C_LDX | S_B | M_MSH:
			if (cbpf_load(head, head_len, tail, tail_len, i->k, 1,
				      &v))
				return 0;
			x = (v & 0xf) << 2;
			break;
		case C_ST:
			mem[i->k] = a;
			break;
		case C_STX:
			mem[i->k] = x;
			break;
		case C_ALU | O_ADD | SRC_K: a += i->k; break;
		case C_ALU | O_ADD | SRC_X: a += x; break;
		case C_ALU | O_SUB | SRC_K: a -= i->k; break;
		case C_ALU | O_SUB | SRC_X: a -= x; break;
		case C_ALU | O_MUL | SRC_K: a *= i->k; break;
		case C_ALU | O_MUL | SRC_X: a *= x; break;
		case C_ALU | O_DIV | SRC_K: a /= i->k; break;
		case C_ALU | O_DIV | SRC_X:
			if (!x)
				return 0;
			a /= x;
			break;
		case C_ALU | O_MOD | SRC_K: a %= i->k; break;
		case C_ALU | O_MOD | SRC_X:
			if (!x)
				return 0;
			a %= x;
			break;
		case C_ALU | O_AND | SRC_K: a &= i->k; break;
		case C_ALU | O_AND | SRC_X: a &= x; break;
		case C_ALU | O_OR | SRC_K: a |= i->k; break;
		case C_ALU | O_OR | SRC_X: a |= x; break;
		case C_ALU | O_XOR | SRC_K: a ^= i->k; break;
		case C_ALU | O_XOR | SRC_X: a ^= x; break;
		case C_ALU | O_LSH | SRC_K: a <<= i->k; break;
		case C_ALU | O_LSH | SRC_X: a = x < 32 ? a << x : 0; break;
		case C_ALU | O_RSH | SRC_K: a >>= i->k; break;
		case C_ALU | O_RSH | SRC_X: a = x < 32 ? a >> x : 0; break;
		case C_ALU | O_NEG: a = 0u - a; break;
		case C_JMP | J_JA: i += i->k; break;
		case C_JMP | J_JEQ | SRC_K: i += a == i->k ? i->jt : i->jf; break;
		case C_JMP | J_JEQ | SRC_X: i += a == x ? i->jt : i->jf; break;
		case C_JMP | J_JGT | SRC_K: i += a > i->k ? i->jt : i->jf; break;
		case C_JMP | J_JGT | SRC_X: i += a > x ? i->jt : i->jf; break;
		case C_JMP | J_JGE | SRC_K: i += a >= i->k ? i->jt : i->jf; break;
		case C_JMP | J_JGE | SRC_X: i += a >= x ? i->jt : i->jf; break;
		case C_JMP | J_JSET | SRC_K: i += (a & i->k) ? i->jt : i->jf; break;
		case C_JMP | J_JSET | SRC_X: i += (a & x) ? i->jt : i->jf; break;
		case C_RET | R_K:
			return i->k;
		case C_RET | R_A:
			return a;
		case C_MISC | MISC_TAX:
			x = a;
			break;
		case C_MISC | MISC_TXA:
			a = x;
			break;
		default:	/* not a checked program (rule 2) */
			return 0;
		}
	}
}
