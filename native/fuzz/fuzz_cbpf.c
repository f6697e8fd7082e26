// SPDX-License-Identifier: MIT
/* fuzz_cbpf.c - seed-driven fuzzer of the capture filter: cbpf_check() and
 * cbpf_run()
 *
 * DOC: Theory of operation
 *
 * A standalone program built with cbpf.c under
 * -fsanitize=address,undefined (scripts/fuzz.sh). Each iteration draws a
 * program: random instructions (mostly known opcodes, offsets near a
 * frame's headers or anywhere, jumps short or past the end, scratch
 * indices in range or not, K = 0 and shifts >= 32 now and then), or one of
 * the programs tcpdump -ddd gives for a few expressions with some of its
 * instructions mutated; its length is 0 to 80, or past CBPF_MAXINSNS.
 * The program is in a malloc() of exactly its length, so a jump the
 * validator let past the end is an ASan finding.
 *
 * Checks, every iteration:
 *  - cbpf_check() answers an enum cbpf_error, with @bad inside the program;
 *  - a program ref_check() (the rules of cbpf.h written again, simply)
 *    refuses is refused with the same reason and index, and the other way;
 *  - an accepted program runs on FC_FRAMES frames (random bytes, or
 *    Ethernet + IPv4/IPv6 + TCP/UDP/ICMP headers, 0 to 1600 bytes), each
 *    given whole and split at random points into a head and a tail, each
 *    piece in a malloc() of exactly its length: every split gives the same
 *    value (rule 4), and any read past the frame is an ASan finding (rule 3);
 *    a division by zero or an oversized shift is a UBSan finding.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cbpf.h"
#include "fuzz.h"

#define FC_ITERS_DEFAULT 20000u
#define FC_FRAMES	8
#define FC_FRAME_MAX	1600

static uint8_t *fc_scratch;	/* FC_FRAME_MAX + 64 bytes */

static struct {
	uint64_t iterations, accepted, runs, matched, splits;
	uint64_t errors[CBPF__E_MAX];
} fc_tot;

static __attribute__((noreturn, format(printf, 1, 2))) void
fc_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz_cbpf: seed %" PRIu64 ": ", fuzz_run.seed);
	va_start(ap, fmt);
	fuzz_vfail(fmt, ap);
}

/* the opcodes the kernel takes (cbpf.h rule 1), written again */
static const uint16_t fc_codes[] = {
	0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x80, 0x00, 0x60,	/* LD */
	0x01, 0x61, 0x81, 0xb1,					/* LDX */
	0x02, 0x03,						/* ST STX */
	0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3c, 0x94, 0x9c,
	0x54, 0x5c, 0x44, 0x4c, 0xa4, 0xac, 0x64, 0x6c, 0x74, 0x7c,
	0x84,							/* ALU */
	0x05, 0x15, 0x1d, 0x25, 0x2d, 0x35, 0x3d, 0x45, 0x4d,	/* JMP */
	0x06, 0x16,						/* RET */
	0x07, 0x87,						/* MISC */
};
#define FC_NCODES (sizeof(fc_codes) / sizeof(fc_codes[0]))

/* tcpdump -ddd -y EN10MB for 'icmp', 'tcp port 80', 'vlan 10 and udp' */
static const struct cbpf_insn fc_icmp[] = {
	{ 40, 0, 0, 12 }, { 21, 0, 3, 2048 }, { 48, 0, 0, 23 },
	{ 21, 0, 1, 1 }, { 6, 0, 0, 262144 }, { 6, 0, 0, 0 },
};
static const struct cbpf_insn fc_tcp80[] = {
	{ 40, 0, 0, 12 }, { 21, 0, 8, 34525 }, { 48, 0, 0, 20 },
	{ 21, 2, 0, 132 }, { 21, 1, 0, 6 }, { 21, 0, 17, 17 },
	{ 40, 0, 0, 54 }, { 21, 14, 0, 80 }, { 40, 0, 0, 56 },
	{ 21, 12, 13, 80 }, { 21, 0, 12, 2048 }, { 48, 0, 0, 23 },
	{ 21, 2, 0, 132 }, { 21, 1, 0, 6 }, { 21, 0, 8, 17 },
	{ 40, 0, 0, 20 }, { 69, 6, 0, 8191 }, { 177, 0, 0, 14 },
	{ 72, 0, 0, 14 }, { 21, 2, 0, 80 }, { 72, 0, 0, 16 },
	{ 21, 0, 1, 80 }, { 6, 0, 0, 262144 }, { 6, 0, 0, 0 },
};
static const struct cbpf_insn fc_vlan[] = {
	{ 40, 0, 0, 12 }, { 21, 2, 0, 33024 }, { 21, 1, 0, 34984 },
	{ 21, 0, 14, 37120 }, { 40, 0, 0, 14 }, { 84, 0, 0, 4095 },
	{ 21, 0, 11, 10 }, { 40, 0, 0, 16 }, { 21, 0, 2, 2048 },
	{ 48, 0, 0, 27 }, { 21, 6, 7, 17 }, { 21, 0, 6, 34525 },
	{ 48, 0, 0, 24 }, { 21, 3, 0, 17 }, { 21, 0, 3, 44 },
	{ 48, 0, 0, 58 }, { 21, 0, 1, 17 }, { 6, 0, 0, 262144 },
	{ 6, 0, 0, 0 },
};
static const struct { const struct cbpf_insn *p; uint32_t n; } fc_real[] = {
	{ fc_icmp, sizeof(fc_icmp) / sizeof(fc_icmp[0]) },
	{ fc_tcp80, sizeof(fc_tcp80) / sizeof(fc_tcp80[0]) },
	{ fc_vlan, sizeof(fc_vlan) / sizeof(fc_vlan[0]) },
};

/**
 * ref_check() - cbpf.h rule 1, written again from its words
 * @p:		program
 * @n:		its length
 * @bad:	out: the refused instruction's index
 *
 * Return: enum cbpf_error
 */
static int ref_check(const struct cbpf_insn *p, uint32_t n, uint32_t *bad)
{
	*bad = 0;
	if (n < 1 || n > CBPF_MAXINSNS)
		return CBPF_E_LENGTH;
	for (uint32_t i = 0; i < n; i++) {
		uint16_t c = p[i].code;
		int known = 0;

		*bad = i;
		for (unsigned int j = 0; j < FC_NCODES; j++)
			known |= fc_codes[j] == c;
		if (!known)
			return CBPF_E_OPCODE;
		if ((c == 0x60 || c == 0x61 || c == 0x02 || c == 0x03) &&
		    p[i].k >= CBPF_MEMWORDS)
			return CBPF_E_MEM;
		if ((c == 0x34 || c == 0x94) && p[i].k == 0)
			return CBPF_E_DIV_ZERO;
		if ((c == 0x64 || c == 0x74) && p[i].k >= 32)
			return CBPF_E_SHIFT;
		if (c == 0x05 && (uint64_t)i + 1 + p[i].k >= n)
			return CBPF_E_JUMP;
		if ((c & 7) == 5 && c != 0x05 &&
		    ((uint64_t)i + 1 + p[i].jt >= n ||
		     (uint64_t)i + 1 + p[i].jf >= n))
			return CBPF_E_JUMP;
	}
	*bad = n - 1;
	return (p[n - 1].code & 7) == 6 ? CBPF_OK : CBPF_E_NO_RET;
}

static uint32_t fc_k(uint64_t *s)
{
	switch (fuzz_below(s, 8)) {
	case 0:
		return (uint32_t)fuzz_rand(s);
	case 1:
		return 0;
	case 2:
		return 32 + (uint32_t)fuzz_below(s, 4);
	case 3:
		return 0xffffffffu - (uint32_t)fuzz_below(s, 4);
	case 4:
		return (uint32_t)fuzz_below(s, CBPF_MEMWORDS + 2);
	default:
		return (uint32_t)fuzz_below(s, 80);	/* a header offset */
	}
}

static void fc_insn(uint64_t *s, struct cbpf_insn *i, uint32_t left)
{
	i->code = fuzz_below(s, 20) ? fc_codes[fuzz_below(s, FC_NCODES)] :
				      (uint16_t)fuzz_rand(s);
	i->k = fc_k(s);
	i->jt = (uint8_t)(fuzz_below(s, 6) ? fuzz_below(s, left + 1) :
					     fuzz_rand(s));
	i->jf = (uint8_t)(fuzz_below(s, 6) ? fuzz_below(s, left + 1) :
					     fuzz_rand(s));
	if (i->code == 0x05 && fuzz_below(s, 4))
		i->k = (uint32_t)fuzz_below(s, left + 1);
}

/* a frame: random, or headers a filter reads, then random */
static uint32_t fc_frame(uint64_t *s, uint8_t *f)
{
	uint32_t len = (uint32_t)(fuzz_below(s, 4) ? fuzz_below(s, 120) :
				  fuzz_below(s, FC_FRAME_MAX + 1));

	for (uint32_t i = 0; i < len; i++)
		f[i] = (uint8_t)fuzz_rand(s);
	if (len >= 14 && fuzz_below(s, 4)) {
		static const uint16_t types[] = { 0x0800, 0x86dd, 0x0806,
						  0x8100 };
		uint16_t t = types[fuzz_below(s, 4)];
		uint32_t l3 = 14;

		f[12] = (uint8_t)(t >> 8);
		f[13] = (uint8_t)t;
		if (t == 0x8100 && len >= 18) {
			f[14] = 0;
			f[15] = fuzz_below(s, 2) ? 10 : (uint8_t)fuzz_rand(s);
			f[16] = 0x08;
			f[17] = 0x00;
			l3 = 18;
			t = 0x0800;
		}
		if (t == 0x0800 && len >= l3 + 20) {
			static const uint8_t protos[] = { 1, 6, 17, 132 };

			f[l3] = 0x45;
			f[l3 + 6] = fuzz_below(s, 3) ? 0 : f[l3 + 6];
			f[l3 + 7] = fuzz_below(s, 3) ? 0 : f[l3 + 7];
			f[l3 + 9] = protos[fuzz_below(s, 4)];
			if (len >= l3 + 24 && fuzz_below(s, 2)) {
				f[l3 + 22] = 0;
				f[l3 + 23] = 80;
			}
		} else if (t == 0x86dd && len >= 54) {
			f[14] = 0x60;
			f[20] = fuzz_below(s, 2) ? 6 : 17;
		}
	}
	return len;
}

static void *fc_dup(const void *p, size_t n)
{
	void *q = malloc(n ? n : 1);

	if (!q)
		abort();
	if (p && n)
		memcpy(q, p, n);
	return q;
}

static void fc_one(uint64_t *s, uint8_t *scratch)
{
	static struct cbpf_insn big[CBPF_MAXINSNS + 2];
	struct cbpf_insn *prog;
	uint32_t n, bad = ~0u, rbad;
	int err, rerr;
	unsigned int kind = (unsigned int)fuzz_below(s, 100);

	if (kind < 2) {		/* too short or too long */
		n = fuzz_below(s, 2) ? 0 : CBPF_MAXINSNS + 1;
		for (uint32_t i = 0; i < n; i++)
			big[i] = (struct cbpf_insn){ 0x06, 0, 0, 1 };
		err = cbpf_check(n ? big : NULL, n, &bad);
		rerr = ref_check(big, n, &rbad);
		if (err != CBPF_E_LENGTH || rerr != err)
			fc_fail("a program of %u instructions: %d, not %d", n,
				err, CBPF_E_LENGTH);
		fc_tot.errors[err]++;
		return;
	}
	if (kind < 40) {	/* a real program, mutated */
		unsigned int r = (unsigned int)fuzz_below(s, 3);

		n = fc_real[r].n;
		prog = fc_dup(fc_real[r].p, n * sizeof(*prog));
		for (uint64_t m = fuzz_below(s, 3); m; m--) {
			uint32_t at = (uint32_t)fuzz_below(s, n);

			if (fuzz_below(s, 2))
				prog[at].k = fc_k(s);
			else
				fc_insn(s, &prog[at], n - at - 1);
		}
	} else {
		n = 1 + (uint32_t)fuzz_below(s, 80);
		prog = fc_dup(NULL, n * sizeof(*prog));
		for (uint32_t i = 0; i < n; i++)
			fc_insn(s, &prog[i], n - i - 1);
		if (fuzz_below(s, 4))
			prog[n - 1] = (struct cbpf_insn){
				fuzz_below(s, 2) ? 0x06 : 0x16, 0, 0,
				fuzz_below(s, 2) ? 0 : 0xffff };
	}
	err = cbpf_check(prog, n, &bad);
	rerr = ref_check(prog, n, &rbad);
	if (err < 0 || err >= CBPF__E_MAX)
		fc_fail("cbpf_check() answered %d", err);
	if (err != rerr || (err && bad != rbad))
		fc_fail("cbpf_check() says %s at %u, the rules say %s at %u",
			cbpf_error_name(err), bad, cbpf_error_name(rerr), rbad);
	fc_tot.errors[err]++;
	if (err) {
		free(prog);
		return;
	}
	fc_tot.accepted++;
	for (unsigned int f = 0; f < FC_FRAMES; f++) {
		uint32_t len = fc_frame(s, scratch), whole, v;
		uint8_t *frame = fc_dup(scratch, len);

		whole = cbpf_run(prog, frame, len, NULL, 0);
		fc_tot.runs++;
		fc_tot.matched += whole != 0;
		for (unsigned int k = 0; k < 3; k++) {
			uint32_t at = (uint32_t)fuzz_below(s, len + 1);
			uint8_t *head = fc_dup(frame, at);
			uint8_t *tail = fc_dup(frame + at, len - at);

			v = cbpf_run(prog, head, at, tail, len - at);
			fc_tot.splits++;
			if (v != whole)
				fc_fail("split at %u of %u gives %u, whole %u",
					at, len, v, whole);
			free(head);
			free(tail);
		}
		free(frame);
	}
	free(prog);
}

/**
 * fc_init() - the scratch buffer the iterations share
 *
 * Return: 0, or 2 without memory
 */
static int fc_init(void)
{
	fc_scratch = calloc(1, FC_FRAME_MAX + 64);
	return fc_scratch ? 0 : 2;
}

/**
 * fc_episode() - one episode: @iters programs from @seed
 * @seed:	episode seed
 * @iters:	iterations
 */
static void fc_episode(uint64_t seed, unsigned int iters)
{
	uint64_t s = seed;

	for (unsigned int i = 0; i < iters; i++, fc_tot.iterations++)
		fc_one(&s, fc_scratch);
}

/**
 * fc_finish() - the summary, one JSON object on stdout
 * @secs:	wall time
 */
static void fc_finish(double secs)
{
	free(fc_scratch);
	printf("{\"fuzzer\": \"cbpf\", \"seed\": %" PRIu64 ", \"episodes\": %"
	       PRIu64 ", \"iterations_per_episode\": %u, \"iterations\": %" PRIu64
	       ", \"seconds\": %.1f, \"accepted\": %" PRIu64 ", \"runs\": %"
	       PRIu64 ", \"matched\": %" PRIu64 ", \"splits\": %" PRIu64
	       ", \"refused\": {", fuzz_run.first, fuzz_run.episodes,
	       fuzz_run.iters, fc_tot.iterations, secs, fc_tot.accepted,
	       fc_tot.runs, fc_tot.matched, fc_tot.splits);
	for (unsigned int i = 1; i < CBPF__E_MAX; i++)
		printf("%s\"%s\": %" PRIu64, i > 1 ? ", " : "",
		       cbpf_error_name((int)i), fc_tot.errors[i]);
	printf("}}\n");
}

const struct fuzz_target fuzz_target = {
	.name = "cbpf",
	.iters_default = FC_ITERS_DEFAULT,
	.init = fc_init,
	.episode = fc_episode,
	.finish = fc_finish,
};
