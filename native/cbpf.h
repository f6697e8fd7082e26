/* SPDX-License-Identifier: MIT */
/* cbpf.h - a classic BPF interpreter: a capture's filter (switch.c)
 *
 * `vnetshare capture NAME FILTER` compiles FILTER, a tcpdump expression,
 * with libpcap's compiler (tcpdump -ddd) into classic BPF; the switch runs
 * it on a capture's mirror copy only (sw_cap_copy()): a frame it refuses
 * is not copied into the capture ring, only counted (filtered).
 *
 * Rules:
 *  1. a program is checked once, by cbpf_check(), before it runs, as the
 *     kernel's bpf_check_classic() checks one: 1 to CBPF_MAXINSNS
 *     instructions, every opcode one the kernel takes (no ancillary
 *     extensions: an absolute load's offset is a packet offset), every
 *     jump forward and inside the program, the last instruction a return
 *     (RET K or RET A), scratch memory indices < CBPF_MEMWORDS, no
 *     division or modulo by a constant zero, no shift by a constant >= 32;
 *  2. cbpf_run() runs only a checked program: it ends after at most as
 *     many steps as the program has instructions (jumps go forward);
 *  3. every packet load is bounds-checked against the bytes given: a load
 *     past them ends the run with 0 (no match), as the kernel does;
 *     division or modulo by X = 0 also returns 0; a shift by X >= 32 gives
 *     0 (libpcap's bpf_filter()); scratch memory starts zeroed;
 *  4. the packet may come in two pieces (the switch's private head copy
 *     and the rest in the ring): a load across them reads both;
 *  5. it never allocates, fails or blocks.
 */
#ifndef VNETSHARE_CBPF_H
#define VNETSHARE_CBPF_H

#include <stdint.h>

/* cdef: begin */
#define CBPF_MAXINSNS	4096u	/* the kernel's BPF_MAXINSNS */
#define CBPF_MEMWORDS	16u	/* scratch memory M[], 32-bit words */

/**
 * struct cbpf_insn - one instruction, laid out as the kernel's struct
 * sock_filter (so a program can be given to SO_ATTACH_FILTER as it is)
 * @code:	opcode
 * @jt:		a conditional jump's offset when true
 * @jf:		its offset when false
 * @k:		the constant operand
 */
struct cbpf_insn {
	uint16_t code;
	uint8_t jt;
	uint8_t jf;
	uint32_t k;
};

/**
 * enum cbpf_error - why cbpf_check() refused a program (rule 1)
 * @CBPF_OK:		it did not
 * @CBPF_E_LENGTH:	no instruction, or more than CBPF_MAXINSNS
 * @CBPF_E_OPCODE:	an opcode the kernel does not know
 * @CBPF_E_JUMP:	a jump past the program's end
 * @CBPF_E_MEM:		a scratch memory index >= CBPF_MEMWORDS
 * @CBPF_E_DIV_ZERO:	division or modulo by a constant 0
 * @CBPF_E_SHIFT:	a shift by a constant >= 32
 * @CBPF_E_NO_RET:	the last instruction is not a return
 */
enum cbpf_error {
	CBPF_OK,
	CBPF_E_LENGTH,
	CBPF_E_OPCODE,
	CBPF_E_JUMP,
	CBPF_E_MEM,
	CBPF_E_DIV_ZERO,
	CBPF_E_SHIFT,
	CBPF_E_NO_RET,
	CBPF__E_MAX
};

int cbpf_check(const struct cbpf_insn *prog, uint32_t len, uint32_t *bad);
const char *cbpf_error_name(int err);
uint32_t cbpf_run(const struct cbpf_insn *prog, const uint8_t *head,
		  uint32_t head_len, const uint8_t *tail, uint32_t tail_len);
/* cdef: end */

#endif /* VNETSHARE_CBPF_H */
