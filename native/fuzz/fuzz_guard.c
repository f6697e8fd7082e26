// SPDX-License-Identifier: MIT
/* fuzz_guard.c - seed-driven fuzzer of guard_check_tx(), the A2H frame verdicts
 *
 * DOC: Theory of operation
 *
 * A standalone program built with guard.c under
 * -fsanitize=address,undefined (scripts/fuzz.sh). Each iteration makes one
 * frame: random bytes, or a template of real headers (Ethernet, 802.1Q,
 * 802.1ad, IPv4, IPv6, ARP) then mutated, of a length from 0 to
 * RING_FRAME_MAX, in a malloc() buffer of exactly that length, so ASan
 * catches a read past it. Source and destination MACs are drawn so that
 * every verdict comes up: the port's own MAC, one bit off it, broadcast,
 * multicast, random. The vnet header is valid or random, the MTU a usual
 * one or any u32.
 *
 * Checks, every iteration:
 *  - the verdict is one of enum guard_verdict;
 *  - it is the verdict of guard_ref(), the L2 rules written again here,
 *    simply, from guard.h's description;
 *  - the guard decides on private copies only (guard.h, rule 1): with
 *    every byte of rec->frame rewritten the verdict stays the same.
 *
 * Episodes, seeds, the summary and the replay command work as in
 * fuzz_ring.c: a failure prints the seed and the command that replays it
 * and exits 1; the summary is one JSON object on stdout.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "guard.h"
#include "fuzz.h"

#define FG_ITERS_DEFAULT	20000u

enum fg_template {
	FG_T_RANDOM = 0, FG_T_IPV4, FG_T_IPV6, FG_T_ARP, FG_T_8021Q,
	FG_T_8021AD, FG_T_QINQ, FG__T_MAX
};
static const char *const fg_template_names[FG__T_MAX] = {
	"random", "ipv4", "ipv6", "arp", "vlan_8021q", "vlan_8021ad", "qinq",
};

static struct {
	uint64_t seed;
	uint64_t iter;
	char replay[512];
} fg;

static struct {
	uint64_t episodes, iterations;
	uint64_t verdicts[GUARD__MAX];
	uint64_t templates[FG__T_MAX];
} fg_tot;

/**
 * fg_fill() - random bytes
 * @s:		state
 * @p:		buffer
 * @n:		bytes
 */
static void fg_fill(uint64_t *s, uint8_t *p, size_t n)
{
	while (n--)
		*p++ = (uint8_t)fuzz_rand(s);
}

/**
 * fg_fail() - report a finding with its replay command and exit 1
 * @fmt:	printf format of what went wrong
 */
static void __attribute__((format(printf, 1, 2), noreturn))
fg_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL fuzz_guard seed=%" PRIu64 " iteration=%" PRIu64
		": ", fg.seed, fg.iter);
	va_start(ap, fmt);
	fuzz_vfail(fg.replay, fmt, ap);
}

/**
 * fg_ref() - the guard's L2 rules, written again independently
 * @mac:	the port's MAC
 * @l2:		the frame's Ethernet header
 * @frame_len:	frame length
 * @gso_type:	vnet gso_type
 * @mtu:	the MTU
 *
 * Return: the enum guard_verdict guard.h describes
 */
static int fg_ref(const uint8_t *mac, const uint8_t *l2, uint32_t frame_len,
		  uint8_t gso_type, uint32_t mtu)
{
	unsigned int type = (unsigned int)l2[12] * 256 + l2[13];
	int own_src = 1, own_dst = 1;

	for (int i = 0; i < 6; i++) {
		own_src &= l2[6 + i] == mac[i];
		own_dst &= l2[i] == mac[i];
	}
	if (!own_src)
		return GUARD_DROP_SPOOF;
	if (type == 0x8100 || type == 0x88a8)
		return GUARD_DROP_VLAN;
	if (gso_type == 0 && (int64_t)frame_len - 14 > (int64_t)mtu)
		return GUARD_DROP_MTU;
	if (l2[0] % 2)
		return GUARD_PASS_GROUP;
	if (own_dst)
		return GUARD_DROP_LOOP;
	return GUARD_PASS_UNICAST;
}

/**
 * fg_mac() - a MAC for a source or destination field
 * @s:		PRNG
 * @out:	six bytes, out
 * @port:	the port's MAC
 */
static void fg_mac(uint64_t *s, uint8_t *out, const uint8_t *port)
{
	switch (fuzz_below(s, 6)) {
	case 0: case 1:
		memcpy(out, port, 6);
		break;
	case 2:		/* one bit off */
		memcpy(out, port, 6);
		out[fuzz_below(s, 6)] ^= (uint8_t)(1u << fuzz_below(s, 8));
		break;
	case 3:
		memset(out, 0xff, 6);
		break;
	case 4:		/* multicast: IPv4, IPv6 */
		memcpy(out, fuzz_below(s, 2) ? "\x01\x00\x5e\x00\x00\x01" :
					     "\x33\x33\x00\x00\x00\x01", 6);
		break;
	default:
		fg_fill(s, out, 6);
	}
}

/**
 * fg_template() - real headers of one kind into a scratch frame
 * @s:		PRNG
 * @t:		enum fg_template
 * @buf:	scratch, at least 64 bytes
 * @port:	the port's MAC
 *
 * Return: bytes of headers written (the rest of the frame is payload)
 */
static size_t fg_template(uint64_t *s, int t, uint8_t *buf, const uint8_t *port)
{
	static const uint8_t ipv4[20] = { 0x45, 0, 0, 84, 0x12, 0x34, 0x40, 0,
					  64, 1, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1 };
	static const uint8_t ipv6[40] = { 0x60, 0, 0, 0, 0, 32, 58, 255,
					  0xfe, 0x80, [23] = 2, 0xff, 0x02,
					  [39] = 1 };
	static const uint8_t arp[28] = { 0, 1, 8, 0, 6, 4, 0, 1 };
	size_t n = 14;

	fg_mac(s, buf, port);
	fg_mac(s, buf + 6, port);
	switch (t) {
	case FG_T_IPV4:
		memcpy(buf + 12, "\x08\x00", 2);
		memcpy(buf + 14, ipv4, sizeof(ipv4));
		n += sizeof(ipv4);
		break;
	case FG_T_IPV6:
		memcpy(buf + 12, "\x86\xdd", 2);
		memcpy(buf + 14, ipv6, sizeof(ipv6));
		n += sizeof(ipv6);
		break;
	case FG_T_ARP:
		memcpy(buf + 12, "\x08\x06", 2);
		memcpy(buf + 14, arp, sizeof(arp));
		memcpy(buf + 22, buf + 6, 6);
		n += sizeof(arp);
		break;
	case FG_T_8021Q:
	case FG_T_8021AD:
		memcpy(buf + 12, t == FG_T_8021Q ? "\x81\x00" : "\x88\xa8", 2);
		buf[14] = 0;
		buf[15] = (uint8_t)fuzz_rand(s);
		memcpy(buf + 16, "\x08\x00", 2);
		memcpy(buf + 18, ipv4, sizeof(ipv4));
		n += 4 + sizeof(ipv4);
		break;
	case FG_T_QINQ:
		memcpy(buf + 12, "\x88\xa8\x00\x05\x81\x00\x00\x07\x86\xdd", 10);
		memcpy(buf + 22, ipv6, sizeof(ipv6));
		n += 8 + sizeof(ipv6);
		break;
	default:
		fg_fill(s, buf + 12, 2);
	}
	return n;
}

/**
 * fg_frame_len() - a frame length, 0 to RING_FRAME_MAX, edges often
 * @s:		PRNG
 * @mtu:	the MTU of this iteration (lengths around it matter)
 *
 * Return: the length
 */
static uint32_t fg_frame_len(uint64_t *s, uint32_t mtu)
{
	uint64_t v;

	switch (fuzz_below(s, 6)) {
	case 0:
		return (uint32_t)fuzz_below(s, 64);
	case 1:		/* around MTU + 14 */
		v = (uint64_t)mtu + 14 - 2 + fuzz_below(s, 5);
		return v > RING_FRAME_MAX ? RING_FRAME_MAX : (uint32_t)v;
	case 2:
		return RING_FRAME_MAX - (uint32_t)fuzz_below(s, 32);
	case 3:
		return (uint32_t)fuzz_below(s, RING_FRAME_MAX + 1);
	default:
		return 14 + (uint32_t)fuzz_below(s, 1501);
	}
}

/**
 * fg_one() - one iteration: make a frame, ask the guard, check the verdict
 * @s:		PRNG
 * @port:	the port
 * @scratch:	RING_FRAME_MAX bytes to build frames in
 */
static void fg_one(uint64_t *s, const struct guard_port *port, uint8_t *scratch)
{
	static const uint32_t mtus[] = { 1500, 9000, 68, 1280, 65535 - 18 };
	int t = (int)fuzz_below(s, FG__T_MAX);
	struct ring_rec rec;
	uint32_t mtu, len;
	size_t hl;
	uint8_t *frame;
	int v, again, want;

	mtu = fuzz_below(s, 4) ? mtus[fuzz_below(s, 5)] : (uint32_t)fuzz_rand(s);
	len = fg_frame_len(s, mtu);
	hl = fg_template(s, t, scratch, port->mac);
	fg_fill(s, scratch + hl, len > hl ? (len - hl < 64 ? len - hl : 64) : 0);
	for (uint64_t k = fuzz_below(s, 4); k; k--)	/* mutate */
		scratch[fuzz_below(s, 64)] ^= (uint8_t)(1u << fuzz_below(s, 8));

	frame = malloc(len ? len : 1);
	if (!frame)
		fg_fail("malloc");
	memcpy(frame, scratch, len);
	memset(&rec, 0, sizeof(rec));
	/* the private copy: the frame's first bytes, random past a short one */
	fg_fill(s, rec.l2, sizeof(rec.l2));
	memcpy(rec.l2, frame, len < 14 ? len : 14);
	if (fuzz_below(s, 3)) {
		rec.vnet.gso_type = (uint8_t)(fuzz_below(s, 2) ? 0 :
				    1 + fuzz_below(s, 5));
		rec.vnet.gso_size = (uint16_t)fuzz_rand(s);
	} else {
		fg_fill(s, (uint8_t *)&rec.vnet, sizeof(rec.vnet));
	}
	rec.frame_len = len;
	rec.frame = frame;
	rec.pos = fuzz_rand(s) & ~63ull;

	v = guard_check_tx(port, &rec, mtu);
	if (v < 0 || v >= GUARD__MAX)
		fg_fail("verdict %d is not an enum guard_verdict", v);
	want = fg_ref(port->mac, rec.l2, len, rec.vnet.gso_type, mtu);
	if (v != want)
		fg_fail("verdict %s, the rules say %s (template %s, len %u, mtu "
			"%u, gso_type %#x, l2 %02x:%02x:%02x:%02x:%02x:%02x > "
			"%02x:%02x:%02x:%02x:%02x:%02x type %02x%02x)",
			guard_verdict_name((unsigned int)v),
			guard_verdict_name((unsigned int)want),
			fg_template_names[t], len, mtu, rec.vnet.gso_type,
			rec.l2[6], rec.l2[7], rec.l2[8], rec.l2[9], rec.l2[10],
			rec.l2[11], rec.l2[0], rec.l2[1], rec.l2[2], rec.l2[3],
			rec.l2[4], rec.l2[5], rec.l2[12], rec.l2[13]);
	/* rule 1: the peer rewrites the frame; the verdict must not move */
	for (uint32_t i = 0; i < len; i++)
		frame[i] = (uint8_t)~frame[i];
	again = guard_check_tx(port, &rec, mtu);
	if (again != v)
		fg_fail("verdict changed from %s to %s when only the shared frame "
			"bytes changed", guard_verdict_name((unsigned int)v),
			guard_verdict_name((unsigned int)again));
	free(frame);
	fg_tot.verdicts[v]++;
	fg_tot.templates[t]++;
}

/**
 * fg_run() - one episode: a port MAC, then @iters frames
 * @seed:	episode seed
 * @iters:	iterations
 * @scratch:	RING_FRAME_MAX bytes
 */
static void fg_run(uint64_t seed, unsigned int iters, uint8_t *scratch)
{
	struct guard_port port;
	uint64_t s = seed;

	fg_fill(&s, port.mac, 6);
	port.mac[0] &= 0xfe;	/* a port's MAC is unicast (sw_port_add()) */
	for (fg.iter = 0; fg.iter < iters; fg.iter++) {
		fg_one(&s, &port, scratch);
		fg_tot.iterations++;
	}
}

static uint64_t fg_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/**
 * main() - parse the options, run the episodes, print the summary
 * @argc:	argument count
 * @argv:	-s SEED, -n ITERATIONS per episode, -t SECONDS
 *
 * Return: 0 if nothing was found, 1 on a finding, 2 on a usage error
 */
int main(int argc, char **argv)
{
	unsigned int iters = FG_ITERS_DEFAULT;
	uint64_t seed = 1, t0;
	double secs = 0;
	uint8_t *scratch;
	int opt;

	while ((opt = getopt(argc, argv, "s:n:t:")) != -1) {
		switch (opt) {
		case 's':
			seed = strtoull(optarg, NULL, 0);
			break;
		case 'n':
			iters = (unsigned int)strtoul(optarg, NULL, 0);
			break;
		case 't':
			secs = strtod(optarg, NULL);
			break;
		default:
			fprintf(stderr, "usage: %s [-s SEED] [-n ITERATIONS] "
				"[-t SECONDS]\n", argv[0]);
			return 2;
		}
	}
	scratch = calloc(1, RING_FRAME_MAX + 64);
	if (!scratch || !iters)
		return 2;
	t0 = fg_now_ns();
	for (uint64_t k = 0;; k++) {
		fg.seed = seed + k;
		snprintf(fg.replay, sizeof(fg.replay), "%s -s %" PRIu64 " -n %u",
			 argv[0], fg.seed, iters);
		fg_run(fg.seed, iters, scratch);
		fg_tot.episodes++;
		if ((fg_now_ns() - t0) / 1e9 >= secs)
			break;
	}
	free(scratch);
	printf("{\"fuzzer\": \"guard\", \"seed\": %" PRIu64 ", \"episodes\": %"
	       PRIu64 ", \"iterations_per_episode\": %u, \"iterations\": %" PRIu64
	       ", \"seconds\": %.1f, \"verdicts\": {", seed, fg_tot.episodes,
	       iters, fg_tot.iterations, (fg_now_ns() - t0) / 1e9);
	for (unsigned int i = 0; i < GUARD__MAX; i++)
		printf("%s\"%s\": %" PRIu64, i ? ", " : "", guard_verdict_name(i),
		       fg_tot.verdicts[i]);
	printf("}, \"templates\": {");
	for (unsigned int i = 0; i < FG__T_MAX; i++)
		printf("%s\"%s\": %" PRIu64, i ? ", " : "", fg_template_names[i],
		       fg_tot.templates[i]);
	printf("}}\n");
	return 0;
}
