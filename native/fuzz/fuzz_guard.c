// SPDX-License-Identifier: MIT
/* fuzz_guard.c - seed-driven fuzzer of the guard: guard_check_frame(), and
 * guard_group_scope() / guard_port_wants() on the same frames, and the
 * switch's multicast group table (mcast.c: IGMP/MLD snooping) on them too
 *
 * DOC: Theory of operation
 *
 * A standalone program built with guard.c under
 * -fsanitize=address,undefined (scripts/fuzz.sh). Each episode draws a port:
 * a unicast MAC, up to GUARD_ADDR_MAX IPv4 and IPv6 prefixes (its EUI-64
 * link-local address often among them; sometimes a count or a prefix length
 * out of range, which the guard must clamp). Each iteration draws the port's
 * flags and makes one frame, one of:
 *  - random bytes, or a template of real headers (Ethernet, 802.1Q,
 *    802.1ad, IPv4, IPv6, ARP) then mutated, of a length from 0 to
 *    RING_FRAME_MAX;
 *  - a structured frame built field by field, with the verdict it must get
 *    worked out while building it (the oracle): IPv4 (options, UDP with
 *    DHCP client and server ports, ICMP echo and redirect, TCP, fragments
 *    first, tiny and non-first, sources in the set, outside it or 0.0.0.0),
 *    ARP (good and bad formats, sender MAC and IP the port's or not, probes,
 *    cut short), IPv6 (up to six extension headers of every walked kind,
 *    fragments, UDP with DHCPv6 ports, TCP, ICMPv6 echo, RA, redirect, MLD,
 *    RS, NS, NA with targets in and out of the set and link-layer, nonce,
 *    padding and zero-length options, sources in the set, outside or ::);
 *    on the DHCP server ports, to them and from any port, whole DHCP and
 *    DHCPv6 messages (fg_dhcp4(), fg_dhcp6()): BOOTP op, htype, hlen,
 *    chaddr the port's or not, the options the guard reads (type,
 *    requested address, client identifier of every kind and DUID,
 *    overload into file and sname) and others, twice, of wrong lengths,
 *    past their area, cut short, past GUARD_HDR_COPY_MAX; DHCPv6 types,
 *    client identifiers, IA_NA/IA_TA addresses in and out of the set,
 *    malformed; UDP lengths right or not;
 *    a third of them are then mutated, and only the invariants hold.
 *    A structured frame's vnet header is built with it (fg_vnet()): none,
 *    a checksum request, a segmentation request, valid or with one field
 *    wrong (offsets, type, size, header length), and the oracle
 *    (fg_vnet_want(), guard.h's vnet rules written again) judges it.
 * Each frame is in a malloc() of exactly its length and the header copy in
 * a malloc() of exactly hdr_len bytes, so ASan catches a read past either.
 * As the switch does, a frame the guard wants a longer copy of (a DHCP
 * message) gets it, up to GUARD_HDR_COPY_MAX, again a malloc() of exactly
 * that. MACs are drawn so that every verdict comes up: the port's own, one
 * bit off, broadcast, multicast, the 802.1D group, the Cisco group, just
 * past each, random; EtherTypes of MAC control, slow protocols, EAPOL and
 * 802.3 lengths often. The vnet header is valid or random, the MTU a usual
 * one or any u32.
 *
 * Checks, every iteration:
 *  - the verdict is in enum guard_verdict;
 *  - it agrees with fg_ref(), the L2 rules written again here, simply,
 *    from guard.h's description: the same L2 drops, the link-layer control
 *    frames (802.1D group, Cisco group, MAC control, EAPOL, LLC but with
 *    GUARD_F_ALLOW_LLC) dropped, other EtherTypes than IPv4, ARP and IPv6
 *    classified by L2 alone, else the L2 class or an L3 drop;
 *  - a longer copy is asked for only with drop_hidden, past the copy and
 *    within the frame;
 *  - a structured frame not mutated gets the oracle's verdict;
 *  - deterministic: the same call twice gives the same verdict;
 *  - the guard decides on private copies only: with every byte of
 *    rec->frame rewritten the verdict stays (rule 1); with different
 *    garbage after hdr_len in the copy's buffer the verdict stays (rule 2);
 *  - a shorter copy never lets more through: a verdict that passes with a
 *    short copy (a malloc() of exactly its length, often a few bytes short
 *    of the longer copy) is the verdict of the full copy;
 *  - flags and addresses only ever let more through: a frame that passes
 *    passes the same with GUARD_F_L3_ANY, with GUARD_F_TRUSTED_ROUTER, with
 *    GUARD_F_ALLOW_LLC and with one more prefix in the set; with L3_ANY
 *    nothing is an IP spoof, as a trusted router nothing is an RA, a
 *    redirect or a DHCP server, with ALLOW_LLC nothing is drop_llc;
 *  - a requested checksum moves nothing: with 2 random bytes written at
 *    csum_start + csum_offset into the copies (what the kernel or a NIC
 *    does to the frame that leaves), a frame that passed gets the same
 *    verdict and the same struct guard_frame;
 *  - what a frame that passed is charged (struct guard_frame): one frame
 *    of its length without GSO; with GSO the segments the kernel cuts,
 *    each fitting the MTU, at least the kernel's least segment, headers
 *    ending past the checksum's L4 header and within the vnet hdr_len.
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
#include "mcast.h"
#include "fuzz.h"

#define FG_ITERS_DEFAULT	20000u

enum fg_template {
	FG_T_RANDOM = 0, FG_T_IPV4, FG_T_IPV6, FG_T_ARP, FG_T_8021Q,
	FG_T_8021AD, FG_T_QINQ, FG_S_IPV4, FG_S_ARP, FG_S_IPV6, FG__T_MAX
};
static const char *const fg_template_names[FG__T_MAX] = {
	"random", "ipv4", "ipv6", "arp", "vlan_8021q", "vlan_8021ad", "qinq",
	"s_ipv4", "s_arp", "s_ipv6",
};

/* No oracle: a mutated or random frame, only the invariants hold. */
#define FG_UNKNOWN		(-1)
/* The oracle's "no objection": the L2 destination class decides. */
#define FG_OK			GUARD_PASS_UNICAST

static struct {
	uint64_t iter;
	uint8_t *scratch;	/* RING_FRAME_MAX + 64 bytes */
} fg;

static struct {
	uint64_t iterations, oracle, mutated, long_copies;
	uint64_t csum_passed, gso_passed;
	uint64_t verdicts[GUARD__MAX];
	uint64_t templates[FG__T_MAX];
} fg_tot;

/**
 * struct fg_b - a frame being built, field by field, and what it must get
 * @p:		the frame's bytes (scratch, RING_FRAME_MAX + 64)
 * @n:		bytes written so far
 * @limit:	bytes of the frame the guard will see (its copy), for the oracle:
 *		GUARD_HDR_COPY (a frame shorter than that hides nothing)
 * @nopad:	no Ethernet padding may follow (the guard would read it)
 * @ipv:	4 or 6 for an IP packet the builder made, else 0
 * @l4:		offset of its L4 header (0: none: ARP)
 * @proto:	its protocol
 * @frag:	it is a fragment (IPv4 MF or offset, any IPv6 fragment header)
 * @end:	where the IP packet ends in the frame (its total or payload
 *		length): padding after it is not the packet's
 * @gso_drop:	the oracle's verdict came after the DHCP guard's GSO check:
 *		with a GSO vnet header the frame is drop_gso instead
 */
struct fg_b {
	uint8_t *p;
	uint32_t n;
	uint32_t limit;
	int nopad;
	int ipv;
	uint32_t l4;
	unsigned int proto;
	int frag;
	uint32_t end;
	int gso_drop;
};

/**
 * fg_u8() - append one byte
 * @b:		the frame
 * @v:		its value (low 8 bits)
 */
static void fg_u8(struct fg_b *b, unsigned int v)
{
	b->p[b->n++] = (uint8_t)v;
}

/**
 * fg_u16() - append a big-endian 16-bit field
 * @b:		the frame
 * @v:		its value (low 16 bits)
 */
static void fg_u16(struct fg_b *b, unsigned int v)
{
	fg_u8(b, v >> 8);
	fg_u8(b, v);
}

/**
 * fg_put() - append bytes
 * @b:		the frame
 * @p:		bytes
 * @n:		how many
 */
static void fg_put(struct fg_b *b, const void *p, uint32_t n)
{
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

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
		": ", fuzz_run.seed, fg.iter);
	va_start(ap, fmt);
	fuzz_vfail(fmt, ap);
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
	switch (fuzz_below(s, 8)) {
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
	case 5:		/* the 802.1D reserved group, or just past it */
		memcpy(out, "\x01\x80\xc2\x00\x00", 5);
		out[5] = (uint8_t)fuzz_below(s, 0x12);
		break;
	case 6:		/* the Cisco group (cc, cd), or next to it */
		memcpy(out, "\x01\x00\x0c\xcc\xcc", 5);
		out[5] = (uint8_t)(0xcb + fuzz_below(s, 4));
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
	default:	/* any EtherType, link-layer control and 802.3 lengths often */
		fg_fill(s, buf + 12, 2);
		if (fuzz_below(s, 2)) {
			static const uint16_t types[] = { 0x8808, 0x8809, 0x888e,
							  0x05dc, 0x05ff, 0x0600,
							  0x0026, 0x88cc };
			uint16_t ty = types[fuzz_below(s, 8)];

			buf[12] = (uint8_t)(ty >> 8), buf[13] = (uint8_t)ty;
		}
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
 * fg_in() - is @a inside a prefix of the set? Bit by bit, not as guard.c does
 * @pfx:	first prefix's address (entries @stride bytes apart)
 * @lens:	first prefix's length byte
 * @stride:	bytes from one entry to the next
 * @n:		entries, as the port says (clamped to GUARD_ADDR_MAX here)
 * @a:		the address
 * @bits:	32 or 128
 *
 * Return: 1 or 0
 */
static int fg_in(const uint8_t *pfx, const uint8_t *lens, size_t stride,
		 unsigned int n, const uint8_t *a, unsigned int bits)
{
	if (n > GUARD_ADDR_MAX)
		n = GUARD_ADDR_MAX;
	for (unsigned int i = 0; i < n; i++) {
		const uint8_t *p = pfx + i * stride;
		unsigned int len = lens[i * stride], b;

		for (b = 0; b < len && b < bits; b++)
			if ((p[b / 8] ^ a[b / 8]) >> (7 - b % 8) & 1)
				break;
		if (b == len || b == bits)
			return 1;
	}
	return 0;
}

/* fg_in4(), fg_in6() - fg_in() on the port's IPv4 or IPv6 set */
static int fg_in4(const struct guard_port *port, const uint8_t *a)
{
	return fg_in(port->ip4[0].addr, &port->ip4[0].len,
		     sizeof(port->ip4[0]), port->n_ip4, a, 32);
}

static int fg_in6(const struct guard_port *port, const uint8_t *a)
{
	return fg_in(port->ip6[0].addr, &port->ip6[0].len,
		     sizeof(port->ip6[0]), port->n_ip6, a, 128);
}

/**
 * fg_addr() - an address for a field: inside a prefix of the set, zero
 *	       (0.0.0.0, ::), or random
 * @s:		PRNG
 * @out:	@bits / 8 bytes, out
 * @pfx:	the set's first address (entries @stride apart), @lens its length
 * @lens:	first prefix's length byte
 * @stride:	bytes between entries
 * @n:		entries in use
 * @bits:	32 or 128
 */
static void fg_addr(uint64_t *s, uint8_t *out, const uint8_t *pfx,
		    const uint8_t *lens, size_t stride, unsigned int n,
		    unsigned int bits)
{
	unsigned int k = fuzz_below(s, 8), i, len;

	fg_fill(s, out, bits / 8);
	if (k == 0) {
		memset(out, 0, bits / 8);
	} else if (k < 6 && n) {	/* in the set: the prefix, random host bits */
		i = (unsigned int)fuzz_below(s, n < GUARD_ADDR_MAX ? n :
					     GUARD_ADDR_MAX);
		len = lens[i * stride];
		for (unsigned int b = 0; b < len && b < bits; b++) {
			uint8_t m = (uint8_t)(0x80u >> (b % 8));

			out[b / 8] = (uint8_t)((out[b / 8] & ~m) |
					       (pfx[i * stride + b / 8] & m));
		}
	}
}

/* fg_addr4(), fg_addr6() - fg_addr() from the port's IPv4 or IPv6 set */
static void fg_addr4(uint64_t *s, uint8_t *out, const struct guard_port *port)
{
	fg_addr(s, out, port->ip4[0].addr, &port->ip4[0].len,
		sizeof(port->ip4[0]), port->n_ip4, 32);
}

static void fg_addr6(uint64_t *s, uint8_t *out, const struct guard_port *port)
{
	fg_addr(s, out, port->ip6[0].addr, &port->ip6[0].len,
		sizeof(port->ip6[0]), port->n_ip6, 128);
}

/**
 * fg_zero() - all zero?
 * @p:		bytes
 * @n:		how many
 *
 * Return: 1 or 0
 */
static int fg_zero(const uint8_t *p, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/**
 * fg_l4_min() - the upper-layer header bytes guard.h says a packet must hold
 * @proto:	protocol
 *
 * Return: TCP 20, UDP, ICMP and ICMPv6 8, else 0
 */
static uint32_t fg_l4_min(unsigned int proto)
{
	return proto == 6 ? 20 : proto == 17 || proto == 1 || proto == 58 ? 8 : 0;
}

/* DHCP and DHCPv6 client messages, the oracle worked out alongside -------------- */

/**
 * fg_other_mac() - the port's MAC with one bit flipped
 * @s:		PRNG
 * @out:	six bytes, out
 * @mac:	the port's MAC
 */
static void fg_other_mac(uint64_t *s, uint8_t *out, const uint8_t *mac)
{
	memcpy(out, mac, 6);
	out[fuzz_below(s, 6)] ^= (uint8_t)(1u << fuzz_below(s, 8));
}

/**
 * fg_duid() - a DUID, and what guard.h says of it in a client identifier
 * @s:		PRNG
 * @out:	its bytes, out (at most 32)
 * @n:		its length, out
 * @mac:	the port's MAC
 *
 * DUID-LLT and DUID-LL over Ethernet of the port's MAC or another, of
 * another hardware type or length; DUID-EN, DUID-UUID, unknown types;
 * sometimes shorter than a type.
 *
 * Return: FG_OK, GUARD_DROP_DHCP_SPOOF or GUARD_DROP_MALFORMED
 */
static int fg_duid(uint64_t *s, uint8_t *out, uint32_t *n, const uint8_t *mac)
{
	unsigned int k = (unsigned int)fuzz_below(s, 12), hw = 1, at;
	int own = fuzz_below(s, 3) != 0, v;
	uint8_t m[6];

	if (own)
		memcpy(m, mac, 6);
	else
		fg_other_mac(s, m, mac);
	if (k < 7) {		/* DUID-LLT (1) or DUID-LL (3) */
		unsigned int type = k < 4 ? 1 : 3;

		at = type == 1 ? 8 : 4;
		if (k == 3 || k == 6)	/* not Ethernet */
			hw = 2 + (unsigned int)fuzz_below(s, 40);
		out[0] = 0, out[1] = (uint8_t)type;
		out[2] = (uint8_t)(hw >> 8), out[3] = (uint8_t)hw;
		fg_fill(s, out + 4, 4);
		memcpy(out + at, m, 6);
		*n = at + 6;
		v = own && hw == 1 ? FG_OK : GUARD_DROP_DHCP_SPOOF;
		if (!fuzz_below(s, 6)) {	/* another length: names no MAC */
			uint32_t l = 2 + (uint32_t)fuzz_below(s, at + 10);

			if (l != *n) {
				fg_fill(s, out + *n, 16);
				*n = l;
				v = GUARD_DROP_DHCP_SPOOF;
			}
		}
		return v;
	}
	switch (k) {
	case 7:			/* DUID-EN: enterprise number, identifier */
		out[0] = 0, out[1] = 2;
		fg_fill(s, out + 2, 16);
		*n = 6 + (uint32_t)fuzz_below(s, 12);
		return FG_OK;
	case 8:			/* DUID-UUID */
		out[0] = 0, out[1] = 4;
		fg_fill(s, out + 2, 16);
		*n = 18;
		return FG_OK;
	case 9:			/* a type of no link-layer kind */
		fg_fill(s, out, 20);
		if (out[0] == 0 && (out[1] == 1 || out[1] == 3))
			out[0] = 1;
		*n = 2 + (uint32_t)fuzz_below(s, 18);
		return FG_OK;
	default:		/* shorter than its type */
		fg_fill(s, out, 2);
		*n = (uint32_t)fuzz_below(s, 2);
		return GUARD_DROP_MALFORMED;
	}
}

/**
 * struct fg_dh - the oracle's walk of DHCP options, as guard.h says
 * @seen:	options read: 1 message type, 2 overload, 4 requested
 *		address, 8 client identifier
 * @type:	the message type
 * @ov:		option overload: 1 file, 2 sname
 * @bad:	a malformed option was walked: the verdict is drop_malformed
 * @cid:	the client identifier's verdict
 * @req_in:	the requested address is in the port's set
 */
struct fg_dh {
	unsigned int seen, type, ov;
	int bad, cid, req_in;
};

/**
 * fg_dh_opts() - one area of DHCP options, written and walked
 * @s:		PRNG
 * @d:		the walk so far
 * @p:		the area
 * @cap:	its size (the options field: as much as the message may take)
 * @fixed:	the area ends at @cap (file, sname), else where it is written
 * @walked:	the guard walks this area (else only its bytes matter)
 * @port:	the port
 *
 * Options the guard reads (type, overload, requested address, client
 * identifier), of good and bad lengths, twice sometimes; others; pads; an
 * end and bytes after it, or none; an option that runs past the area.
 *
 * Return: bytes written
 */
static uint32_t fg_dh_opts(uint64_t *s, struct fg_dh *d, uint8_t *p,
			   uint32_t cap, int fixed, int walked,
			   const struct guard_port *port)
{
	static const uint8_t types[] = { 1, 3, 4, 7, 8, 1, 3, 4, 7, 8,
					 2, 5, 6, 9, 10, 13 };
	unsigned int nopt = (unsigned int)fuzz_below(s, 7), code, bit, len;
	uint8_t v[64];
	uint32_t n = 0;
	int good, cv;

	for (unsigned int i = 0; i < nopt && n + 2 + 40 <= cap; i++) {
		unsigned int k = (unsigned int)fuzz_below(s, 16);

		good = 1;
		cv = FG_OK;
		fg_fill(s, v, sizeof(v));
		switch (k) {
		case 0: case 1: case 2:
			code = 53, len = 1;
			v[0] = fuzz_below(s, 12) ? types[fuzz_below(s, sizeof(types))]
						 : (uint8_t)fuzz_rand(s);
			break;
		case 3:
			code = 50, len = 4;
			fg_addr4(s, v, port);
			break;
		case 4: case 5: case 6:
			code = 61;
			switch (fuzz_below(s, 4)) {
			case 0:		/* hardware type 1 + a MAC */
				v[0] = 1;
				if (fuzz_below(s, 3))
					memcpy(v + 1, port->mac, 6);
				else
					fg_other_mac(s, v + 1, port->mac);
				len = fuzz_below(s, 8) ? 7 : 2 + (unsigned int)fuzz_below(s, 10);
				cv = len == 7 && !memcmp(v + 1, port->mac, 6) ? FG_OK
					: GUARD_DROP_DHCP_SPOOF;
				break;
			case 1: case 2:	/* 255, IAID, a DUID (RFC 4361) */
				v[0] = 255;
				fg_fill(s, v + 1, 4);
				cv = fg_duid(s, v + 5, &len, port->mac);
				len += 5;
				if (len < 7)
					cv = GUARD_DROP_MALFORMED;
				break;
			default:	/* another kind: names no MAC */
				fg_fill(s, v, 20);
				if (v[0] == 1 || v[0] == 255)
					v[0] = 0;
				len = 2 + (unsigned int)fuzz_below(s, 18);
			}
			break;
		case 7:
			code = 52, len = 1;
			v[0] = (uint8_t)(1 + fuzz_below(s, 3));
			break;
		case 8:
			p[n++] = 0;	/* pad */
			continue;
		default:
			do
				code = (unsigned int)fuzz_below(s, 255);
			while (code == 0 || code == 50 || code == 52 || code == 53 ||
			       code == 61);
			len = (unsigned int)fuzz_below(s, 21);
			fg_fill(s, v, len);
		}
		if (!fuzz_below(s, 24) && code != 61) {	/* a length not its own */
			unsigned int l = (unsigned int)fuzz_below(s, 8);

			if (l != len)
				fg_fill(s, v, 8), len = l, good = 0;
		}
		p[n++] = (uint8_t)code;
		p[n++] = (uint8_t)len;
		memcpy(p + n, v, len);
		n += len;
		if (!walked || d->bad)
			continue;
		bit = code == 53 ? 1 : code == 52 ? 2 : code == 50 ? 4 :
		      code == 61 ? 8 : 0;
		if ((d->seen & bit) || (!good && bit) ||
		    (code == 61 && len < 2)) {
			d->bad = 1;
			continue;
		}
		d->seen |= bit;
		if (code == 53)
			d->type = v[0];
		else if (code == 52)
			d->ov = v[0];
		else if (code == 50)
			d->req_in = fg_in4(port, v);
		else if (code == 61)
			d->cid = cv;
	}
	switch (fuzz_below(s, 8)) {
	case 0:			/* an option past the area's end */
		if (!fixed && n + 2 + 40 <= cap) {
			len = 1 + (unsigned int)fuzz_below(s, 40);
			p[n] = 12, p[n + 1] = (uint8_t)len;
			fg_fill(s, p + n + 2, len);
			n += 2 + (uint32_t)fuzz_below(s, len);
		} else if (fixed && cap - n >= 2) {
			p[n] = 12;
			p[n + 1] = (uint8_t)(cap - n - 1 + fuzz_below(s, 20));
			n = cap;
		} else {
			break;
		}
		if (walked)
			d->bad = 1;
		break;
	case 1:			/* no end: the options run to the area's end */
		break;
	default:		/* an end, then bytes no one reads */
		if (n < cap) {
			p[n++] = 255;
			len = (unsigned int)fuzz_below(s, 12);
			len = len < cap - n ? len : cap - n;
			fg_fill(s, p + n, len);
			n += len;
		}
	}
	return n;
}

/**
 * fg_dhcp4() - a DHCP client message: the BOOTP header, its options
 * @s:		PRNG
 * @b:		the frame, the UDP header written
 * @port:	the port
 * @op:		the BOOTP op written, out
 *
 * Return: the verdict guard.h gives the message once read whole
 */
static int fg_dhcp4(uint64_t *s, struct fg_b *b, const struct guard_port *port,
		    unsigned int *op)
{
	int any = !!(port->flags & GUARD_F_L3_ANY);
	int trusted = !!(port->flags & GUARD_F_TRUSTED_ROUTER);
	uint32_t m = b->n, n, fsz, ssz;
	unsigned int htype = 1, hlen = 6, k = (unsigned int)fuzz_below(s, 20);
	uint8_t *h = b->p + m, file[128] = { 0 }, sname[64] = { 0 };
	struct fg_dh d = { 0 };
	int own = 1, cookie;

	*op = k == 0 ? 2 : k == 1 ? (unsigned int)fuzz_rand(s) & 0xff : 1;
	if (!fuzz_below(s, 16))
		htype = (unsigned int)fuzz_below(s, 4);
	if (!fuzz_below(s, 16))
		hlen = (unsigned int)fuzz_below(s, 17);
	memset(h, 0, 236);
	h[0] = (uint8_t)*op, h[1] = (uint8_t)htype, h[2] = (uint8_t)hlen;
	fg_fill(s, h + 4, 4);				/* xid */
	fg_addr4(s, h + 12, port);			/* ciaddr */
	if (!fuzz_below(s, 4))
		fg_fill(s, h + 16, 12);			/* yiaddr, siaddr, giaddr */
	memcpy(h + 28, port->mac, 6);			/* chaddr */
	if (!fuzz_below(s, 6)) {
		fg_other_mac(s, h + 28, port->mac);
		own = 0;
	}
	if (!fuzz_below(s, 8))
		fg_fill(s, h + 34, 10);			/* chaddr's padding */
	cookie = fuzz_below(s, 16) != 0;
	memcpy(h + 236, cookie ? "\x63\x82\x53\x63" : "\x63\x82\x53\x64", 4);
	n = 240;
	if (fuzz_below(s, 8)) {		/* a message type first, mostly */
		static const uint8_t first[] = { 1, 3, 4, 7, 7, 4, 8, 2, 5 };

		h[n] = 53, h[n + 1] = 1;
		h[n + 2] = first[fuzz_below(s, sizeof(first))];
		if (cookie) {
			d.seen = 1;
			d.type = h[n + 2];
		}
		n += 3;
	}
	n += fg_dh_opts(s, &d, h + n, 300, 0, cookie, port);
	if (!fuzz_below(s, 24)) {			/* past GUARD_HDR_COPY_MAX */
		for (int i = 0; i < 7; i++) {
			h[n] = 224, h[n + 1] = 255;
			fg_fill(s, h + n + 2, 255);
			n += 257;
		}
	}
	/* overload: the file and sname fields hold options too */
	fsz = fg_dh_opts(s, &d, file, 128, 1, cookie && (d.ov & 1), port);
	ssz = fg_dh_opts(s, &d, sname, 64, 1, cookie && (d.ov & 2), port);
	memcpy(h + 108, file, fsz);
	memcpy(h + 44, sname, ssz);
	if (!fuzz_below(s, 32))
		n = 236 + (uint32_t)fuzz_below(s, 4);	/* no room for the cookie */
	if (!fuzz_below(s, 16))
		n = (uint32_t)fuzz_below(s, 236);	/* cut short */
	b->n += n;

	if (n < 236)
		return GUARD_DROP_MALFORMED;
	if (*op == 2)
		return trusted ? FG_OK : GUARD_DROP_DHCP_SERVER;
	if (*op != 1)
		return GUARD_DROP_MALFORMED;
	if (n < 240 || !cookie)
		memset(&d, 0, sizeof(d));		/* no options read */
	if (d.bad)
		return GUARD_DROP_MALFORMED;
	if ((d.seen & 1) && d.type != 1 && d.type != 3 && d.type != 4 &&
	    d.type != 7 && d.type != 8)
		return trusted ? FG_OK : GUARD_DROP_DHCP_SERVER;
	if (htype != 1 || hlen != 6 || !own)
		return GUARD_DROP_DHCP_SPOOF;
	if ((d.seen & 8) && d.cid)
		return d.cid;
	if (any)
		return FG_OK;
	if ((d.seen & 1) && d.type == 7 && !fg_in4(port, h + 12))
		return GUARD_DROP_DHCP_SPOOF;
	if ((d.seen & 1) && d.type == 4 && (!(d.seen & 4) || !d.req_in))
		return GUARD_DROP_DHCP_SPOOF;
	return FG_OK;
}

/**
 * fg_dhcp6_ia() - an IA_NA or IA_TA option's value: its fields, addresses
 * @s:		PRNG
 * @p:		where to write
 * @hl:		the IA's own fields (IA_NA 12, IA_TA 4)
 * @port:	the port
 * @v:		the verdict if the guard walks it, out
 *
 * Return: bytes written
 */
static uint32_t fg_dhcp6_ia(uint64_t *s, uint8_t *p, uint32_t hl,
			    const struct guard_port *port, int *v)
{
	unsigned int nsub = (unsigned int)fuzz_below(s, 4), code, len;
	uint32_t n = hl;

	*v = FG_OK;
	fg_fill(s, p, hl);
	if (!fuzz_below(s, 16)) {		/* shorter than its fields */
		*v = GUARD_DROP_MALFORMED;
		return (uint32_t)fuzz_below(s, hl);
	}
	for (unsigned int i = 0; i < nsub; i++) {
		if (fuzz_below(s, 4)) {		/* an IA address */
			code = 5;
			len = fuzz_below(s, 12) ? 24 : (unsigned int)fuzz_below(s, 40);
			fg_fill(s, p + n + 4, len);	/* random, or from the set */
			if (len >= 16 && fuzz_below(s, 2))
				fg_addr6(s, p + n + 4, port);
			if (*v == FG_OK && len < 24)
				*v = GUARD_DROP_MALFORMED;
			else if (*v == FG_OK && !fg_in6(port, p + n + 4))
				*v = GUARD_DROP_DHCP_SPOOF;
		} else {
			code = 6 + (unsigned int)fuzz_below(s, 40);
			len = (unsigned int)fuzz_below(s, 12);
			fg_fill(s, p + n + 4, len);
		}
		p[n] = 0, p[n + 1] = (uint8_t)code;
		p[n + 2] = (uint8_t)(len >> 8), p[n + 3] = (uint8_t)len;
		n += 4 + len;
	}
	if (!fuzz_below(s, 16)) {		/* a sub-option past the IA */
		p[n] = 0, p[n + 1] = 5, p[n + 2] = 0, p[n + 3] = 30;
		n += 4 + (uint32_t)fuzz_below(s, 30);
		if (*v == FG_OK)
			*v = GUARD_DROP_MALFORMED;
	}
	return n;
}

/**
 * fg_dhcp6() - a DHCPv6 message to the server port: type, options
 * @s:		PRNG
 * @b:		the frame, the UDP header written
 * @port:	the port
 *
 * Return: the verdict guard.h gives the message once read whole
 */
static int fg_dhcp6(uint64_t *s, struct fg_b *b, const struct guard_port *port)
{
	static const uint8_t types[] = { 1, 3, 4, 5, 6, 8, 9, 11, 1, 8, 9,
					 8, 9, 8, 9, 2, 7, 10, 12, 13, 0, 14,
					 36 };
	int any = !!(port->flags & GUARD_F_L3_ANY);
	int trusted = !!(port->flags & GUARD_F_TRUSTED_ROUTER);
	unsigned int type, nopt = (unsigned int)fuzz_below(s, 6), ids = 0;
	uint8_t *p = b->p + b->n;
	uint32_t n = 4, len;
	int v = FG_OK, ov, rel;

	type = fuzz_below(s, 12) ? types[fuzz_below(s, sizeof(types))]
				 : (unsigned int)fuzz_rand(s) & 0xff;
	p[0] = (uint8_t)type;
	fg_fill(s, p + 1, 3);
	if (!fuzz_below(s, 24)) {		/* shorter than its header */
		b->n += (uint32_t)fuzz_below(s, 4);
		return GUARD_DROP_MALFORMED;
	}
	rel = !any && (type == 8 || type == 9);
	for (unsigned int i = 0; i < nopt; i++) {
		unsigned int k = (unsigned int)fuzz_below(s, 10), code;

		ov = FG_OK;
		if (k < 3) {
			code = 1;
			ov = fg_duid(s, p + n + 4, &len, port->mac);
			if (ids++)
				ov = GUARD_DROP_MALFORMED;
		} else if (k < 7) {
			code = k == 6 ? 4 : 3;
			len = fg_dhcp6_ia(s, p + n + 4, code == 3 ? 12 : 4, port, &ov);
			if (!rel)
				ov = FG_OK;
		} else {
			do
				code = (unsigned int)fuzz_below(s, 100);
			while (code == 1 || code == 3 || code == 4);
			len = (unsigned int)fuzz_below(s, 24);
			fg_fill(s, p + n + 4, len);
		}
		p[n] = (uint8_t)(code >> 8), p[n + 1] = (uint8_t)code;
		p[n + 2] = (uint8_t)(len >> 8), p[n + 3] = (uint8_t)len;
		n += 4 + len;
		if (v == FG_OK)
			v = ov;
	}
	if (!fuzz_below(s, 12)) {		/* an option past the message */
		p[n] = 0, p[n + 1] = (uint8_t)fuzz_below(s, 40);
		p[n + 2] = 0, p[n + 3] = 64;
		len = (uint32_t)fuzz_below(s, 64);
		fg_fill(s, p + n + 4, len);
		n += 4 + len;
		if (v == FG_OK)
			v = GUARD_DROP_MALFORMED;
	} else if (!fuzz_below(s, 12)) {	/* a header cut short */
		fg_fill(s, p + n, 3);
		n += 1 + (uint32_t)fuzz_below(s, 3);
		if (v == FG_OK)
			v = GUARD_DROP_MALFORMED;
	}
	b->n += n;
	switch (type) {
	case 1: case 3: case 4: case 5: case 6: case 8: case 9: case 11:
		return v;
	default:
		return trusted ? FG_OK : GUARD_DROP_DHCP_SERVER;
	}
}

/**
 * fg_dhcp_udp() - the DHCP guard's verdict on a UDP datagram, past its header
 * @b:		the frame, built
 * @l4:		offset of the UDP header (its 8 bytes in the frame)
 * @v4:		DHCP (1) or DHCPv6 (0)
 * @trusted:	the port is a trusted router
 * @frag:	a first fragment
 * @msg:	the message's own verdict (fg_dhcp4(), fg_dhcp6()), if built
 *
 * Return: the verdict guard.h gives the datagram
 */
static int fg_dhcp_udp(struct fg_b *b, uint32_t l4, int v4, int trusted,
		       int frag, int msg)
{
	unsigned int sport = (unsigned int)b->p[l4] << 8 | b->p[l4 + 1];
	unsigned int dport = (unsigned int)b->p[l4 + 2] << 8 | b->p[l4 + 3];
	uint32_t ulen = (uint32_t)b->p[l4 + 4] << 8 | b->p[l4 + 5];

	if (sport == (v4 ? 67u : 547u) || dport == (v4 ? 68u : 546u))
		return trusted ? FG_OK : GUARD_DROP_DHCP_SERVER;
	if (dport != (v4 ? 67u : 547u))
		return FG_OK;
	if (frag)
		return GUARD_DROP_FRAGMENT;
	b->gso_drop = 1;
	if (ulen < 8 || l4 + ulen > b->n)
		return GUARD_DROP_MALFORMED;
	if (l4 + ulen > GUARD_HDR_COPY_MAX)
		return GUARD_DROP_HIDDEN;
	return msg;
}

/**
 * fg_s_ipv4() - a structured IPv4 packet after the Ethernet header
 * @s:		PRNG
 * @b:		the frame, 14 bytes written
 * @port:	the port
 *
 * Return: the verdict guard.h gives it (FG_OK: the L2 class decides)
 */
static int fg_s_ipv4(uint64_t *s, struct fg_b *b, const struct guard_port *port)
{
	static const uint8_t protos[] = { 17, 17, 17, 6, 1, 1, 47, 50 };
	int any = !!(port->flags & GUARD_F_L3_ANY);
	int trusted = !!(port->flags & GUARD_F_TRUSTED_ROUTER);
	unsigned int ihl = 5, proto, frag = 0, sport = 0, dport = 0, type = 0;
	unsigned int op = 0, kind = fuzz_below(s, 10), l4n;
	uint32_t ip = b->n, l4, pay = 0, ulen;
	uint8_t src[4];
	int zero, dmsg = FG_OK;

	if (!fuzz_below(s, 4))
		ihl += (unsigned int)fuzz_below(s, 11);
	proto = protos[fuzz_below(s, sizeof(protos))];
	fg_addr4(s, src, port);
	zero = fg_zero(src, 4);
	fg_u16(b, 0x4000 | ihl << 8);
	fg_u16(b, 0);			/* total length, below */
	fg_u16(b, (unsigned int)fuzz_rand(s));
	if (kind == 7)			/* first fragment */
		frag = 0x2000;
	else if (kind == 8)		/* tiny first fragment */
		frag = 0x2000;
	else if (kind == 9)		/* not the first */
		frag = 1 + (unsigned int)fuzz_below(s, 0x1fff);
	else if (fuzz_below(s, 2))
		frag = 0x4000;		/* DF */
	fg_u16(b, frag);
	fg_u8(b, 64);
	fg_u8(b, proto);
	fg_u16(b, 0);
	fg_put(b, src, 4);
	fg_fill(s, b->p + b->n, 4);
	b->n += 4;
	for (unsigned int i = 5; i < ihl; i++)
		fg_put(b, "\x01\x01\x01\x01", 4);	/* NOP options */

	l4 = b->n;
	if (frag & 0x1fff) {
		pay = 8 + (uint32_t)fuzz_below(s, 40);
	} else if (proto == 17) {
		switch (fuzz_below(s, 8)) {
		case 0: case 1: case 2:
			sport = 68, dport = 67;
			break;
		case 3:
			sport = 67, dport = 68;
			break;
		case 4:		/* a server's message from any port (1067 -> 68) */
			sport = (unsigned int)fuzz_rand(s) & 0xffff, dport = 68;
			break;
		case 5:		/* to the server port from any */
			sport = (unsigned int)fuzz_rand(s) & 0xffff, dport = 67;
			break;
		default:
			sport = (unsigned int)fuzz_below(s, 70000) & 0xffff;
			dport = (unsigned int)fuzz_rand(s) & 0xffff;
		}
		fg_u16(b, sport);
		fg_u16(b, dport);
		fg_u16(b, 0);			/* length, below */
		fg_u16(b, 0);
		if (dport == 67 && sport != 67) {
			dmsg = fg_dhcp4(s, b, port, &op);
		} else {
			op = 1 + (unsigned int)fuzz_below(s, 3) / 2;	/* 1 mostly */
			fg_u8(b, op);
			fg_u8(b, 1);
			fg_u8(b, 6);
			pay = (uint32_t)fuzz_below(s, 300);
		}
	} else if (proto == 1) {
		type = fuzz_below(s, 3) ? (fuzz_below(s, 2) ? 5 : 8) :
			(unsigned int)fuzz_below(s, 256);
		fg_u8(b, type);
		fg_u8(b, 0);
		fg_fill(s, b->p + b->n, 6);
		b->n += 6;
		pay = (uint32_t)fuzz_below(s, 100);
	} else {
		fg_fill(s, b->p + b->n, 20);
		b->n += 20;
		pay = (uint32_t)fuzz_below(s, 1500);
	}
	fg_fill(s, b->p + b->n, pay);
	b->n += pay;
	if (proto == 17 && !(frag & 0x1fff)) {	/* UDP length, wrong sometimes */
		ulen = b->n - l4;
		if (!fuzz_below(s, 16))
			ulen = fuzz_below(s, 2) ? (uint32_t)fuzz_below(s, 8) :
			       ulen + 1 + (uint32_t)fuzz_below(s, 20);
		b->p[l4 + 4] = (uint8_t)(ulen >> 8);
		b->p[l4 + 5] = (uint8_t)ulen;
	}
	if (kind == 8) {		/* cut inside the L4 header */
		l4n = (unsigned int)fuzz_below(s, fg_l4_min(proto) + 1);
		b->n = l4 + l4n;
	}
	l4n = b->n - l4;
	b->p[ip + 2] = (uint8_t)((b->n - ip) >> 8);
	b->p[ip + 3] = (uint8_t)(b->n - ip);
	b->ipv = 4;
	b->l4 = l4;
	b->proto = proto;
	b->frag = !!(frag & 0x3fff);
	b->end = b->n;

	if (!fuzz_below(s, 32)) {	/* not version 4 */
		b->p[ip] = (uint8_t)((b->p[ip] & 0x0f) |
				     (5 + fuzz_below(s, 11)) << 4);
		return GUARD_DROP_MALFORMED;
	}
	/* the oracle, in guard.h's order */
	if (!any && !zero && !fg_in4(port, src))
		return GUARD_DROP_IP_SPOOF;
	if (frag & 0x1fff)
		return !any && zero ? GUARD_DROP_IP_SPOOF : FG_OK;
	if (l4n < fg_l4_min(proto))
		return frag & 0x2000 ? GUARD_DROP_FRAGMENT : GUARD_DROP_MALFORMED;
	if (!any && zero && (frag & 0x2000 || proto != 17 || sport != 68 ||
			     dport != 67 || l4n < 9 || op != 1))
		return GUARD_DROP_IP_SPOOF;
	if (proto == 17)
		return fg_dhcp_udp(b, l4, 1, trusted, !!(frag & 0x2000), dmsg);
	if (!trusted && proto == 1 && type == 5)
		return GUARD_DROP_REDIRECT;
	return FG_OK;
}

/**
 * fg_s_arp() - a structured ARP packet after the Ethernet header
 * @s:		PRNG
 * @b:		the frame, 14 bytes written
 * @port:	the port
 *
 * Return: the verdict guard.h gives it
 */
static int fg_s_arp(uint64_t *s, struct fg_b *b, const struct guard_port *port)
{
	int any = !!(port->flags & GUARD_F_L3_ANY), bad = 0;
	unsigned int f[5] = { 1, 0x0800, 6, 4, 1 + (unsigned int)fuzz_below(s, 2) };
	uint8_t sha[6], spa[4];

	if (!fuzz_below(s, 6)) {	/* one field wrong */
		unsigned int i = (unsigned int)fuzz_below(s, 5);
		unsigned int v = (unsigned int)fuzz_rand(s) & (i == 2 || i == 3 ? 0xff : 0xffff);

		bad = v != f[i] && !(i == 4 && v <= 2 && v >= 1);
		f[i] = v;
	}
	memcpy(sha, port->mac, 6);
	if (!fuzz_below(s, 4))
		sha[fuzz_below(s, 6)] ^= (uint8_t)(1u << fuzz_below(s, 8));
	fg_addr4(s, spa, port);
	fg_u16(b, f[0]);
	fg_u16(b, f[1]);
	fg_u8(b, f[2]);
	fg_u8(b, f[3]);
	fg_u16(b, f[4]);
	fg_put(b, sha, 6);
	fg_put(b, spa, 4);
	fg_fill(s, b->p + b->n, 10);
	b->n += 10;
	if (!fuzz_below(s, 10)) {
		b->n = 14 + (uint32_t)fuzz_below(s, 28);
		b->nopad = 1;	/* padding would complete it */
		return GUARD_DROP_MALFORMED;
	}
	if (bad)
		return GUARD_DROP_MALFORMED;
	if (memcmp(sha, port->mac, 6))
		return GUARD_DROP_ARP_SPOOF;
	if (!any && !fg_zero(spa, 4) && !fg_in4(port, spa))
		return GUARD_DROP_ARP_SPOOF;
	return FG_OK;
}

/**
 * fg_s_ipv6() - a structured IPv6 packet after the Ethernet header
 * @s:		PRNG
 * @b:		the frame, 14 bytes written; @b->limit the copy's length
 * @port:	the port
 *
 * Extension headers are written and judged in one pass, the oracle
 * following guard.h's order with what it knows of the layout it built.
 *
 * Return: the verdict guard.h gives it, FG_OK if the L2 class decides
 */
static int fg_s_ipv6(uint64_t *s, struct fg_b *b, const struct guard_port *port)
{
	static const uint8_t icmp_types[] = { 128, 129, 134, 137, 133, 135,
					      135, 136, 136, 131, 143, 132, 1 };
	static const uint8_t exts[] = { 0, 60, 43, 44, 51 };
	int any = !!(port->flags & GUARD_F_L3_ANY);
	int trusted = !!(port->flags & GUARD_F_TRUSTED_ROUTER);
	unsigned int next, type = 0, sport = 0, dport, nexts = 0, nopts = 0;
	unsigned int ext_kind[6], ext_len[6], frag_off[6], frag_m[6];
	uint32_t ip = b->n, off, l4, l4n, ulen;
	uint8_t src[16], tgt[16];
	int zero, first_frag = 0, frags = 0, tiny, dmsg = FG_OK;
	struct { unsigned int type, len; int own; } opts[4];

	fg_addr6(s, src, port);
	zero = fg_zero(src, 16);
	if (fuzz_below(s, 3) == 0)
		nexts = 1 + (unsigned int)fuzz_below(s, 6);
	for (unsigned int i = 0; i < nexts; i++) {
		ext_kind[i] = exts[i ? 1 + fuzz_below(s, 4) : fuzz_below(s, 5)];
		if (i && !fuzz_below(s, 12))
			ext_kind[i] = 0;	/* hop-by-hop not first */
		ext_len[i] = ext_kind[i] == 44 ? 8 : ext_kind[i] == 51 ?
			     (2 + 2 * (unsigned int)fuzz_below(s, 3)) * 4 :
			     8 * (1 + (unsigned int)fuzz_below(s, 3));
		frag_off[i] = ext_kind[i] == 44 && !fuzz_below(s, 3) ?
			      1 + (unsigned int)fuzz_below(s, 0x1fff) : 0;
		frag_m[i] = ext_kind[i] == 44 && fuzz_below(s, 4);
	}
	switch (fuzz_below(s, 8)) {
	case 0: case 1:
		next = 17;
		break;
	case 2:
		next = 6;
		break;
	case 3:
		next = 59;
		break;
	default:
		next = 58;
		type = icmp_types[fuzz_below(s, sizeof(icmp_types))];
	}
	tiny = !fuzz_below(s, 12);

	fg_u16(b, 0x6000);
	fg_u16(b, (unsigned int)fuzz_rand(s));
	fg_u16(b, 0);			/* payload length, below */
	fg_u8(b, nexts ? ext_kind[0] : next);
	fg_u8(b, 255);
	fg_put(b, src, 16);
	fg_fill(s, b->p + b->n, 16);
	b->n += 16;
	for (unsigned int i = 0; i < nexts; i++) {
		unsigned int nh = i + 1 < nexts ? ext_kind[i + 1] : next;

		fg_u8(b, nh);
		if (ext_kind[i] == 44) {
			fg_u8(b, 0);
			fg_u16(b, frag_off[i] << 3 | frag_m[i]);
			fg_u16(b, (unsigned int)fuzz_rand(s));
			fg_u16(b, (unsigned int)fuzz_rand(s));
			continue;
		}
		fg_u8(b, ext_kind[i] == 51 ? ext_len[i] / 4 - 2 : ext_len[i] / 8 - 1);
		memset(b->p + b->n, 0, ext_len[i] - 2);	/* Pad1 options */
		b->n += ext_len[i] - 2;
	}
	l4 = b->n;
	if (next == 17) {
		switch (fuzz_below(s, 7)) {
		case 0: case 1: case 2:
			sport = 546, dport = 547;
			break;
		case 3:
			sport = 547, dport = 546;
			break;
		case 4:		/* a server's message from any port (1547 -> 546) */
			sport = (unsigned int)fuzz_rand(s) & 0xffff, dport = 546;
			break;
		case 5:		/* to the server port from any */
			sport = (unsigned int)fuzz_rand(s) & 0xffff, dport = 547;
			break;
		default:
			sport = (unsigned int)fuzz_rand(s) & 0xffff;
			dport = (unsigned int)fuzz_rand(s) & 0xffff;
		}
		fg_u16(b, sport);
		fg_u16(b, dport);
		fg_u16(b, 0);			/* length, below */
		fg_u16(b, 0);
		if (dport == 547 && sport != 547)
			dmsg = fg_dhcp6(s, b, port);
		else
			b->n += (uint32_t)fuzz_below(s, 200);
		ulen = b->n - l4;		/* wrong sometimes */
		if (!fuzz_below(s, 16))
			ulen = fuzz_below(s, 2) ? (uint32_t)fuzz_below(s, 8) :
			       ulen + 1 + (uint32_t)fuzz_below(s, 20);
		b->p[l4 + 4] = (uint8_t)(ulen >> 8);
		b->p[l4 + 5] = (uint8_t)ulen;
	} else if (next == 6) {
		fg_fill(s, b->p + b->n, 20);
		b->n += 20 + (uint32_t)fuzz_below(s, 1400);
	} else if (next == 58) {
		fg_u8(b, type);
		fg_u8(b, 0);
		fg_u16(b, 0);
		fg_fill(s, b->p + b->n, 4);
		b->n += 4;
		if (type == 135 || type == 136) {
			fg_addr6(s, tgt, port);
			fg_put(b, tgt, 16);
		}
		if (type >= 133 && type <= 137)
			nopts = (unsigned int)fuzz_below(s, 5);
		for (unsigned int i = 0; i < nopts; i++) {
			unsigned int k = (unsigned int)fuzz_below(s, 12);

			opts[i].own = 1;
			if (k < 3) {		/* source link-layer address */
				opts[i].type = 1, opts[i].len = 8;
			} else if (k < 6) {	/* target link-layer address */
				opts[i].type = 2, opts[i].len = 8;
			} else if (k < 8) {	/* nonce */
				opts[i].type = 14, opts[i].len = 8;
			} else if (k < 11) {	/* anything else, up to 24 bytes */
				opts[i].type = 3 + (unsigned int)fuzz_below(s, 11);
				opts[i].len = 8 * (1 + (unsigned int)fuzz_below(s, 3));
			} else {		/* length 0: the last one */
				opts[i].type = (unsigned int)fuzz_below(s, 256);
				opts[i].len = 0;
				nopts = i + 1;
			}
			if ((opts[i].type == 1 || opts[i].type == 2) &&
			    !fuzz_below(s, 4))
				opts[i].own = 0;
			fg_u8(b, opts[i].type);
			fg_u8(b, opts[i].len / 8);
			if (opts[i].type == 1 || opts[i].type == 2) {
				fg_put(b, port->mac, 6);
				if (!opts[i].own)
					b->p[b->n - 1 - fuzz_below(s, 6)] ^=
						(uint8_t)(1u << fuzz_below(s, 8));
			} else {
				fg_fill(s, b->p + b->n, (opts[i].len ? opts[i].len : 8) - 2);
				b->n += (opts[i].len ? opts[i].len : 8) - 2;
			}
		}
		if (type < 133 || type > 137)
			b->n += (uint32_t)fuzz_below(s, 120);
	}
	if (tiny)
		b->n = l4 + (uint32_t)fuzz_below(s, fg_l4_min(next) + 1);
	l4n = b->n - l4;
	b->nopad = b->n - ip - 40 == 0;	/* 0: the guard reads to the frame's end */
	b->p[ip + 4] = (uint8_t)((b->n - ip - 40) >> 8);
	b->p[ip + 5] = (uint8_t)(b->n - ip - 40);
	b->ipv = 6;
	b->l4 = l4;
	b->proto = next;
	for (unsigned int i = 0; i < nexts; i++)
		b->frag |= ext_kind[i] == 44;
	b->end = b->n;

	if (!fuzz_below(s, 32)) {	/* not version 6 */
		b->p[ip] = (uint8_t)((b->p[ip] & 0x0f) | fuzz_below(s, 6) << 4);
		return GUARD_DROP_MALFORMED;
	}
	/* the oracle, in guard.h's order */
	if (!any && !zero && !fg_in6(port, src))
		return GUARD_DROP_IP_SPOOF;
	off = ip + 40;
	for (unsigned int i = 0; i < nexts; i++, off += ext_len[i - 1]) {
		if (i == GUARD_EXT_MAX)
			return GUARD_DROP_HIDDEN;
		if (ext_kind[i] == 0 && i)
			return GUARD_DROP_MALFORMED;
		if (off + (ext_kind[i] == 44 ? 8 : 2) > b->limit)
			return GUARD_DROP_HIDDEN;
		if (ext_kind[i] == 44) {
			if (frags++)
				return GUARD_DROP_MALFORMED;
			if (frag_off[i])
				return !any && zero ? GUARD_DROP_IP_SPOOF : FG_OK;
			first_frag = frag_m[i];
			continue;
		}
		if (off + ext_len[i] > b->limit)
			return GUARD_DROP_HIDDEN;
	}
	if (l4n < fg_l4_min(next))
		return first_frag ? GUARD_DROP_FRAGMENT : GUARD_DROP_MALFORMED;
	if (off + fg_l4_min(next) > b->limit)
		return GUARD_DROP_HIDDEN;
	if (!any && zero && !(next == 58 && (type == 135 || type == 131 ||
					     type == 143)))
		return GUARD_DROP_IP_SPOOF;
	if (next == 17)
		return fg_dhcp_udp(b, l4, 0, trusted, first_frag, dmsg);
	if (next != 58)
		return FG_OK;
	if (type == 134)
		return trusted ? FG_OK : GUARD_DROP_RA;
	if (type == 137)
		return trusted ? FG_OK : GUARD_DROP_REDIRECT;
	if (type != 133 && type != 135 && type != 136)
		return FG_OK;
	if (frags)
		return GUARD_DROP_FRAGMENT;
	l4n = type == 133 ? 8 : 24;
	if (off + l4n > b->n)
		return GUARD_DROP_MALFORMED;
	if (off + l4n > b->limit)
		return GUARD_DROP_HIDDEN;
	if (!any && (type == 136 || (type == 135 && zero)) && !fg_in6(port, tgt))
		return GUARD_DROP_ND_SPOOF;
	off += l4n;
	for (unsigned int i = 0; i < nopts && off < b->n; i++) {
		if (off + 2 > b->limit)
			return GUARD_DROP_HIDDEN;
		if (!opts[i].len)
			return GUARD_DROP_MALFORMED;
		if (off + opts[i].len > b->n)
			return GUARD_DROP_MALFORMED;
		if (off + opts[i].len > b->limit)
			return GUARD_DROP_HIDDEN;
		if (opts[i].type == 1 && type == 135 && zero)
			return GUARD_DROP_MALFORMED;
		if ((opts[i].type == 1 || opts[i].type == 2) && !opts[i].own)
			return GUARD_DROP_ND_SPOOF;
		off += opts[i].len;
	}
	if (off < b->n)		/* cut short inside an option */
		return GUARD_DROP_MALFORMED;
	return FG_OK;
}
/**
 * fg_vnet_want() - guard.h's vnet rules, written again: the verdict on
 *		    what a vnet header asks of a structured frame
 * @b:		the frame as built: its L4 header, protocol, fragment, end
 * @v:		the vnet header
 * @len:	the frame's length (padding included)
 * @mtu:	the MTU
 * @hl:		a GSO frame's headers, out (0 otherwise)
 * @segs:	the frames it becomes, out
 *
 * Return: FG_OK, GUARD_DROP_CSUM_OFFSET or GUARD_DROP_GSO
 */
static int fg_vnet_want(const struct fg_b *b, const struct ring_vnet_hdr *v,
			uint32_t len, uint32_t mtu, uint32_t *hl,
			uint32_t *segs)
{
	int tcp = b->l4 && b->proto == 6, udp = b->l4 && b->proto == 17;
	unsigned int type = v->gso_type & 0x7f, ecn = v->gso_type & 0x80;
	uint32_t thl, pay;

	*hl = 0;
	*segs = 1;
	if (v->flags & 1) {		/* NEEDS_CSUM */
		if (!(tcp || udp) || b->frag || v->csum_start != b->l4 ||
		    v->csum_offset != (tcp ? 16 : 6))
			return GUARD_DROP_CSUM_OFFSET;
	}
	if (!v->gso_type)
		return FG_OK;
	if (!(v->flags & 1) || !v->gso_size)
		return GUARD_DROP_GSO;
	if (!((type == 1 && b->ipv == 4 && tcp) ||
	      (type == 4 && b->ipv == 6 && tcp) || (type == 5 && udp && !ecn)))
		return GUARD_DROP_GSO;
	thl = tcp ? (b->p[b->l4 + 12] >> 4) * 4u : 8u;
	if (tcp && (thl < 20 || v->gso_size + thl - 20 < 48))
		return GUARD_DROP_GSO;
	if (b->l4 + thl > b->end || v->hdr_len < b->l4 + thl)
		return GUARD_DROP_GSO;
	pay = len - b->l4 - thl;
	if (udp && pay > 128ull * v->gso_size)
		return GUARD_DROP_GSO;
	if ((uint64_t)b->l4 + thl - 14 + v->gso_size > mtu)
		return GUARD_DROP_GSO;
	*hl = b->l4 + thl;
	while ((uint64_t)*segs * v->gso_size < pay)
		++*segs;
	return FG_OK;
}

/**
 * fg_vnet() - a vnet header for a structured frame, valid or one field off
 * @s:		PRNG
 * @b:		the frame as built (a TCP data offset may be set here)
 * @len:	the frame's length
 * @mtu:	the MTU
 * @v:		out
 *
 * Mostly none; else a checksum request at the frame's L4 checksum field
 * (or somewhere, without one), half of those a segmentation request
 * fitting the frame (type, headers, a segment size between the least and
 * what fits the MTU, often below the payload); one in four then gets one
 * field wrong. fg_vnet_want() judges whatever comes out.
 */
static void fg_vnet(uint64_t *s, struct fg_b *b, uint32_t len, uint32_t mtu,
		    struct ring_vnet_hdr *v)
{
	int tcp = b->l4 && b->proto == 6, udp = b->l4 && b->proto == 17;
	uint64_t lo, hi, top;
	uint32_t thl, hl, pay;

	memset(v, 0, sizeof(*v));
	if (fuzz_below(s, 8) < 3)
		return;
	v->flags = 1;
	v->csum_start = (uint16_t)(b->l4 ? b->l4 : fuzz_below(s, 64));
	v->csum_offset = (uint16_t)(tcp ? 16 : udp ? 6 : fuzz_below(s, 20));
	if ((tcp || udp) && fuzz_below(s, 2)) {
		if (tcp && b->l4 + 20 <= b->end && fuzz_below(s, 4)) {
			thl = 20 + 4 * (uint32_t)fuzz_below(s, 11);
			while (b->l4 + thl > b->end)
				thl -= 4;
			b->p[b->l4 + 12] = (uint8_t)((thl / 4) << 4 |
						     (b->p[b->l4 + 12] & 0xf));
		}
		thl = tcp && b->l4 + 13 <= b->n ?
		      (b->p[b->l4 + 12] >> 4) * 4u : 8u;
		hl = b->l4 + thl;
		pay = len > hl ? len - hl : 0;
		v->gso_type = (uint8_t)(udp ? 5 : b->ipv == 4 ? 1 : 4);
		if (tcp && !fuzz_below(s, 4))
			v->gso_type |= 0x80;	/* ECN */
		v->hdr_len = (uint16_t)(hl + (fuzz_below(s, 2) ? 0 :
					      fuzz_below(s, 64)));
		lo = tcp ? (thl >= 68 ? 1 : thl >= 20 ? 68 - thl : 48) :
		     pay / 128 + !!(pay % 128) + !pay;
		hi = (uint64_t)mtu + 14 > hl ? (uint64_t)mtu + 14 - hl : 0;
		if (hi > 0xffff)
			hi = 0xffff;
		top = hi < pay ? hi : pay;
		if (top >= lo && fuzz_below(s, 2))
			v->gso_size = (uint16_t)(lo + fuzz_below(s, top - lo + 1));
		else if (hi >= lo)
			v->gso_size = (uint16_t)(fuzz_below(s, 2) ? lo : hi);
		else
			v->gso_size = (uint16_t)fuzz_rand(s);
	}
	if (fuzz_below(s, 4))
		return;
	switch (fuzz_below(s, 8)) {	/* one field off */
	case 0:
		v->csum_start = (uint16_t)(v->csum_start + fuzz_below(s, 9) - 4);
		break;
	case 1:
		v->csum_offset = (uint16_t)fuzz_below(s, 24);
		break;
	case 2:
		v->flags = 0;
		break;
	case 3: {
		static const uint8_t types[] = { 1, 4, 5, 0x81, 0x84, 0x85, 3, 0x80 };

		v->gso_type = types[fuzz_below(s, sizeof(types))];
		break;
	}
	case 4:
		v->gso_size = (uint16_t)(fuzz_below(s, 2) ? v->gso_size - 1 -
					 fuzz_below(s, 8) : v->gso_size + 1 +
					 fuzz_below(s, 8));
		break;
	case 5:
		v->hdr_len = (uint16_t)(v->hdr_len - 1 - fuzz_below(s, 8));
		break;
	case 6:
		v->gso_size = fuzz_below(s, 2) ? 0 : 1;
		break;
	default:
		if (tcp && b->l4 + 13 <= b->n)	/* a TCP header under 20 bytes */
			b->p[b->l4 + 12] = (uint8_t)(fuzz_below(s, 5) << 4);
	}
}

/**
 * fg_policy() - a port for one episode: MAC, prefixes, sometimes out of range
 * @s:		PRNG
 * @port:	out
 */
static void fg_policy(uint64_t *s, struct guard_port *port)
{
	static const uint8_t len4[] = { 32, 32, 32, 24, 16, 0 };
	static const uint8_t len6[] = { 128, 128, 128, 64, 48, 0 };

	memset(port, 0, sizeof(*port));
	fg_fill(s, port->mac, 6);
	port->mac[0] &= 0xfe;	/* a port's MAC is unicast (sw_port_add()) */
	port->n_ip4 = (uint8_t)fuzz_below(s, GUARD_ADDR_MAX + 1);
	port->n_ip6 = (uint8_t)fuzz_below(s, GUARD_ADDR_MAX + 1);
	if (!fuzz_below(s, 16))
		port->n_ip4 = (uint8_t)fuzz_rand(s);
	if (!fuzz_below(s, 16))
		port->n_ip6 = (uint8_t)fuzz_rand(s);
	for (unsigned int i = 0; i < GUARD_ADDR_MAX; i++) {
		unsigned int k = (unsigned int)fuzz_below(s, 8);

		fg_fill(s, port->ip4[i].addr, 4);
		fg_fill(s, port->ip6[i].addr, 16);
		port->ip4[i].len = k < 6 ? len4[k] : k == 6 ?
			(uint8_t)fuzz_below(s, 33) : (uint8_t)fuzz_rand(s);
		port->ip6[i].len = k < 6 ? len6[k] : k == 6 ?
			(uint8_t)fuzz_below(s, 129) : (uint8_t)fuzz_rand(s);
	}
	if (fuzz_below(s, 4)) {	/* the EUI-64 link-local address, first */
		uint8_t *a = port->ip6[0].addr;

		memset(a, 0, 16);
		a[0] = 0xfe, a[1] = 0x80;
		a[8] = port->mac[0] ^ 2, a[9] = port->mac[1], a[10] = port->mac[2];
		a[11] = 0xff, a[12] = 0xfe;
		memcpy(a + 13, port->mac + 3, 3);
		port->ip6[0].len = 128;
	}
}

/**
 * fg_is_pass() - a verdict the L3 guard did not object to
 * @v:		verdict
 *
 * Return: 1 for the destination classes (pass_unicast, pass_group,
 * drop_loop), else 0
 */
static int fg_is_pass(int v)
{
	return v == GUARD_PASS_UNICAST || v == GUARD_PASS_GROUP ||
	       v == GUARD_DROP_LOOP;
}

/**
 * fg_name() - a verdict's name, also for a value out of range
 * @v:		verdict
 *
 * Return: a static string
 */
static const char *fg_name(int v)
{
	const char *n = v < 0 ? NULL : guard_verdict_name((unsigned int)v);

	return n ? n : "(out of range)";
}

/**
 * fg_same_gf() - two struct guard_frame answers alike?
 * @a:		one
 * @b:		the other
 *
 * Return: 1 or 0
 */
static int fg_same_gf(const struct guard_frame *a, const struct guard_frame *b)
{
	return a->l4_off == b->l4_off && a->l4_proto == b->l4_proto &&
	       a->hdr_len == b->hdr_len && a->segs == b->segs &&
	       a->bytes == b->bytes;
}

/**
 * fg_check_charge() - what a frame that passed is charged, by guard.h
 * @rec:	the frame's private copies
 * @mtu:	the MTU
 * @gf:		the guard's struct guard_frame
 * @what:	the frame's kind, for messages
 */
static void fg_check_charge(const struct ring_rec *rec, uint32_t mtu,
			    const struct guard_frame *gf, const char *what)
{
	const struct ring_vnet_hdr *v = &rec->vnet;
	uint64_t pay, thl;

	if (!v->gso_type) {
		if (gf->segs != 1 || gf->bytes != rec->frame_len || gf->hdr_len)
			fg_fail("guard_check_frame: a frame without GSO charged "
				"%u frames, %" PRIu64 " bytes, hdr_len %u (%s)",
				gf->segs, gf->bytes, gf->hdr_len, what);
		return;
	}
	if (!(v->flags & 1) || v->csum_start != gf->l4_off || !gf->l4_off ||
	    gf->hdr_len <= gf->l4_off || gf->hdr_len > v->hdr_len ||
	    gf->hdr_len > rec->frame_len || !v->gso_size ||
	    (uint64_t)gf->hdr_len - 14 + v->gso_size > mtu)
		fg_fail("guard_check_frame: GSO frame passed with csum_start %u "
			"(L4 at %u), headers %u (hdr_len %u), gso_size %u, mtu %u "
			"(%s)", v->csum_start, gf->l4_off, gf->hdr_len,
			v->hdr_len, v->gso_size, mtu, what);
	pay = rec->frame_len - gf->hdr_len;
	thl = gf->hdr_len - gf->l4_off;
	if ((uint64_t)gf->segs * v->gso_size < pay ||
	    (gf->segs > 1 && (uint64_t)(gf->segs - 1) * v->gso_size >= pay) ||
	    !gf->segs ||
	    gf->bytes != rec->frame_len + (uint64_t)(gf->segs - 1) * gf->hdr_len)
		fg_fail("guard_check_frame: %u segments, %" PRIu64 " bytes for "
			"%" PRIu64 " bytes of payload in %u-byte segments (%s)",
			gf->segs, gf->bytes, pay, v->gso_size, what);
	if ((gf->l4_proto == 17 && gf->segs > GUARD_UDP_MAX_SEGMENTS) ||
	    (gf->l4_proto == 6 && v->gso_size + thl < 20 + 48) ||
	    (gf->l4_proto != 6 && gf->l4_proto != 17))
		fg_fail("guard_check_frame: GSO of protocol %u passed in %u "
			"segments of %u bytes, L4 header %" PRIu64 " (%s)",
			gf->l4_proto, gf->segs, v->gso_size, thl, what);
}

/* the episode's multicast group table (mcast.c), its clock (ns) and its
   own generator: the guard's frames are the same seed by seed with or
   without it (the mutant tests count on a seed's frames) */
static struct mcast *fg_mc;
static uint64_t fg_mc_now;
static uint64_t fg_mc_rng;

static const uint8_t fg_igmp_types[] = { 0x11, 0x12, 0x16, 0x17, 0x22 };
static const uint8_t fg_mld_types[] = { 130, 131, 132, 143 };

/* make @l3 (@n bytes) IGMP, often of a type mcast.c reads */
static void fg_mcast_igmp(uint64_t *s, uint8_t *l3, uint32_t n)
{
	uint32_t ihl = (l3[0] & 0x0fu) * 4u;

	l3[9] = 2;
	if (ihl < n && fuzz_below(s, 4))
		l3[ihl] = fg_igmp_types[fuzz_below(s, sizeof(fg_igmp_types))];
}

/* make @l3 (@n bytes) MLD behind a hop-by-hop header, often of a type
   mcast.c reads */
static void fg_mcast_mld(uint64_t *s, uint8_t *l3, uint32_t n)
{
	l3[6] = 0;
	if (n > 48 && fuzz_below(s, 4)) {
		l3[40] = 58;
		l3[41] = 0;
		l3[48] = fg_mld_types[fuzz_below(s, sizeof(fg_mld_types))];
	}
}

/**
 * fg_mcast() - the group table on a frame's header copy
 * @hdr:	the copy, exactly @hl bytes (malloc)
 * @hl:		its length, > RING_ETH_HLEN
 * @what:	the frame's description, for a finding
 *
 * As the switch gives it a partition's or the wire's group frame:
 * mcast_snoop() then mcast_route() on the L3 bytes, in a malloc() of
 * exactly their length, from a random port or the wire on a random VLAN;
 * then again with the IPv4 protocol made IGMP or the IPv6 next header
 * hop-by-hop, often with an IGMP or MLD type mcast.c reads, so its
 * parsers see every mutation. Their
 * answers are in their enums, a group to deliver to has a member, the
 * table never holds more than MCAST_GROUPS_MAX groups. Time moves on by
 * random steps, and the table is aged now and then.
 */
static void fg_mcast(const uint8_t *hdr, uint32_t hl, const char *what)
{
	uint64_t *s = &fg_mc_rng;
	unsigned int type = (unsigned int)hdr[12] << 8 | hdr[13];
	uint32_t n = hl - RING_ETH_HLEN;
	const struct mcast_group *g = NULL;
	uint8_t *l3 = malloc(n);
	int r;

	if (!l3)
		fg_fail("malloc");
	memcpy(l3, hdr + RING_ETH_HLEN, n);
	for (int k = 0; k < 2; k++) {
		uint16_t vid = (uint16_t)fuzz_below(s, 4);
		uintptr_t port = fuzz_below(s, 9);

		if (k == 1 && type == 0x0800 && n > 9)
			fg_mcast_igmp(s, l3, n);
		else if (k == 1 && type == 0x86dd && n > 6)
			fg_mcast_mld(s, l3, n);
		else if (k == 1)
			break;
		fg_mc_now += fuzz_below(s, 4000000000ull);
		r = mcast_snoop(fg_mc, vid, (void *)port, (uint32_t)port,
				(int)fuzz_below(s, 2), type, l3, n, fg_mc_now);
		if (r < MCAST_MSG_NONE || r > MCAST_MSG_QUERY)
			fg_fail("mcast_snoop: %d (%s)", r, what);
		r = mcast_route(fg_mc, vid, type, l3, n, fg_mc_now, &g);
		if (r < MCAST_FLOOD || r > MCAST_ROUTERS)
			fg_fail("mcast_route: %d (%s)", r, what);
		if (r == MCAST_MEMBERS && (!g || !g->first))
			fg_fail("mcast_route: members, but none (%s)", what);
		if (mcast_groups(fg_mc) > MCAST_GROUPS_MAX)
			fg_fail("mcast: %u groups (%s)", mcast_groups(fg_mc),
				what);
	}
	if (!fuzz_below(s, 1000))
		mcast_age(fg_mc, fg_mc_now);
	if (!fuzz_below(s, 1000))
		mcast_port_gone(fg_mc, (void *)(uintptr_t)fuzz_below(s, 9));
	free(l3);
}

/**
 * fg_check_frame() - every invariant of guard_check_frame() on one frame
 * @s:		PRNG
 * @port:	the port
 * @rec:	the frame's private copies
 * @hdr:	the header copy, exactly @hl bytes long (malloc)
 * @hl:		min(frame length, GUARD_HDR_COPY), or the longer copy the
 *		guard asked for (the switch's, sw_guard_long())
 * @mtu:	the MTU
 * @l2v:	fg_ref()'s L2 verdict
 * @want:	the oracle's verdict, or FG_UNKNOWN
 * @ghl:	with @want: a GSO frame's headers by the oracle (0: not GSO)
 * @segs:	with @want: the frames it becomes by the oracle
 * @what:	the frame's kind, for messages
 *
 * Return: the verdict
 */
static int fg_check_frame(uint64_t *s, const struct guard_port *port,
			  const struct ring_rec *rec, const uint8_t *hdr,
			  uint32_t hl, uint32_t mtu, int l2v, int want,
			  uint32_t ghl, uint32_t segs, const char *what)
{
	static uint8_t big[GUARD_HDR_COPY_MAX + 64];
	unsigned int type = (unsigned int)rec->l2[12] << 8 | rec->l2[13];
	int bridge = !memcmp(rec->l2, "\x01\x80\xc2\x00\x00", 5) &&
		     rec->l2[5] <= 0x0f;
	struct guard_frame gf, gf2;
	int cisco = !memcmp(rec->l2, "\x01\x00\x0c\xcc\xcc", 5) &&
		    (rec->l2[5] == 0xcc || rec->l2[5] == 0xcd);
	struct guard_port p2;
	uint32_t sh;
	uint8_t *short_hdr;
	int v, again, exp;

	v = guard_check_frame(port, rec, hdr, hl, mtu, &gf);
	if (v < 0 || v >= GUARD__MAX)
		fg_fail("guard_check_frame: verdict %d is not an enum "
			"guard_verdict (%s)", v, what);
	if (gf.want && (v != GUARD_DROP_HIDDEN || gf.want <= hl ||
			gf.want > rec->frame_len))
		fg_fail("guard_check_frame: %s wants a copy of %u bytes, it has "
			"%u of %u (%s)", fg_name(v), gf.want, hl, rec->frame_len,
			what);
	if (l2v == GUARD_DROP_SPOOF || l2v == GUARD_DROP_VLAN ||
	    l2v == GUARD_DROP_MTU)
		exp = l2v;
	else if (bridge)
		exp = GUARD_DROP_BRIDGE_GROUP;
	else if (cisco)
		exp = GUARD_DROP_CISCO_GROUP;
	else if (type == 0x8808 || type == 0x8809)
		exp = GUARD_DROP_MAC_CONTROL;
	else if (type == 0x888e)
		exp = GUARD_DROP_EAPOL;
	else if (type < 0x0600 && !(port->flags & GUARD_F_ALLOW_LLC))
		exp = GUARD_DROP_LLC;
	else if (type != 0x0800 && type != 0x0806 && type != 0x86dd)
		exp = rec->vnet.flags & 1 ? GUARD_DROP_CSUM_OFFSET :
		      rec->vnet.gso_type ? GUARD_DROP_GSO : l2v;
	else
		exp = want == FG_UNKNOWN ? FG_UNKNOWN : want ? want : l2v;
	if (exp != FG_UNKNOWN && v != exp)
		fg_fail("guard_check_frame: verdict %s, the rules say %s (%s, "
			"len %u, flags %#x, type %04x)", fg_name(v), fg_name(exp),
			what, rec->frame_len, port->flags, type);
	if (exp == FG_UNKNOWN && v != l2v && v < GUARD_DROP_MALFORMED)
		fg_fail("guard_check_frame: verdict %s on an IP or ARP frame "
			"whose L2 verdict is %s (%s)", fg_name(v), fg_name(l2v),
			what);
	again = guard_check_frame(port, rec, hdr, hl, mtu, &gf2);
	if (again != v || !fg_same_gf(&gf, &gf2))
		fg_fail("guard_check_frame: %s, then %s on the same input (%s)",
			fg_name(v), fg_name(again), what);
	if (fg_is_pass(v))
		fg_check_charge(rec, mtu, &gf, what);
	if (fg_is_pass(v) && want != FG_UNKNOWN &&
	    (gf.hdr_len != ghl || gf.segs != segs))
		fg_fail("guard_check_frame: headers %u in %u segments, the rules "
			"say %u in %u (%s, len %u, gso_size %u)", gf.hdr_len,
			gf.segs, ghl, segs, what, rec->frame_len,
			rec->vnet.gso_size);

	/* the kernel or a NIC completes the checksum asked for: 2 bytes of
	 * its own at csum_start + csum_offset of what leaves (the copies) */
	if (fg_is_pass(v) && rec->vnet.gso_type && gf.segs > 1)
		fg_tot.gso_passed++;
	if (fg_is_pass(v) && (rec->vnet.flags & 1)) {
		uint32_t at = (uint32_t)rec->vnet.csum_start +
			      rec->vnet.csum_offset;
		struct ring_rec r2 = *rec;
		uint8_t *h2 = malloc(hl ? hl : 1);

		if (!h2)
			fg_fail("malloc");
		memcpy(h2, hdr, hl);
		for (uint32_t i = at; i < at + 2; i++) {
			uint8_t x = (uint8_t)fuzz_rand(s);

			if (i < RING_ETH_HLEN)
				r2.l2[i] = x;
			if (i < hl)
				h2[i] = x;
		}
		again = guard_check_frame(port, &r2, h2, hl, mtu, &gf2);
		free(h2);
		fg_tot.csum_passed++;
		if (again != v || !fg_same_gf(&gf, &gf2))
			fg_fail("guard_check_frame: %s, but %s once the checksum "
				"asked for is written at %u (csum_start %u + "
				"csum_offset %u): the guard decided on bytes the "
				"checksum rewrites (%s)", fg_name(v),
				fg_name(again), at, rec->vnet.csum_start,
				rec->vnet.csum_offset, what);
	}

	/* the group scope reads only inside what it is given (ASan: @hdr
	 * is exactly @hl bytes), on any bytes, as the switch's wire floods
	 * use it; an address's owner is never refused it under L3_ANY */
	if (hl >= RING_ETH_HLEN) {
		struct guard_scope sc;
		int w;

		guard_group_scope(rec->l2, hdr + RING_ETH_HLEN,
				  hl - RING_ETH_HLEN, &sc);
		if (sc.kind < GUARD_SCOPE_ALL || sc.kind > GUARD_SCOPE_SOLICITED)
			fg_fail("guard_group_scope: kind %d (%s)", sc.kind, what);
		w = guard_port_wants(port, &sc);
		if (w != 0 && w != 1)
			fg_fail("guard_port_wants: %d (%s)", w, what);
		if ((port->flags & GUARD_F_L3_ANY) && !w &&
		    sc.kind != GUARD_SCOPE_ROUTERS)
			fg_fail("guard_port_wants: 0 under GUARD_F_L3_ANY for "
				"scope %d (%s)", sc.kind, what);
		if (sc.kind == GUARD_SCOPE_ALL && !w)
			fg_fail("guard_port_wants: 0 for a flood to all (%s)",
				what);
	}

	if (hl > RING_ETH_HLEN)
		fg_mcast(hdr, hl, what);

	/* rule 2: bytes after hdr_len in the copy's buffer never count */
	memcpy(big, hdr, hl);
	for (int k = 0; k < 2; k++) {
		fg_fill(s, big + hl, sizeof(big) - hl);
		again = guard_check_frame(port, rec, big, hl, mtu, NULL);
		if (again != v)
			fg_fail("guard_check_frame: verdict %s became %s when "
				"only bytes past hdr_len (%u) changed (%s)",
				fg_name(v), fg_name(again), hl, what);
	}
	/* a shorter copy never lets more through (by a caller that makes no
	   longer copy when the guard asks for one, too), and the guard reads
	   nothing past it (ASan: a malloc of exactly @sh bytes); a few bytes
	   short of a longer copy often */
	sh = hl > GUARD_HDR_COPY && fuzz_below(s, 2) ?
	     hl - 1 - (uint32_t)fuzz_below(s, 8) :
	     (uint32_t)fuzz_below(s, hl + 1);
	short_hdr = malloc(sh ? sh : 1);
	if (!short_hdr)
		fg_fail("malloc");
	memcpy(short_hdr, hdr, sh);
	again = guard_check_frame(port, rec, short_hdr, sh, mtu, NULL);
	free(short_hdr);
	if (again < 0 || again >= GUARD__MAX || (fg_is_pass(again) && again != v))
		fg_fail("guard_check_frame: a copy of %u bytes gives %s, the "
			"full copy of %u gives %s (%s)", sh, fg_name(again), hl,
			fg_name(v), what);

	/* flags and addresses only let more through */
	if ((port->flags & GUARD_F_L3_ANY) && v == GUARD_DROP_IP_SPOOF)
		fg_fail("guard_check_frame: drop_ip_spoof with GUARD_F_L3_ANY "
			"(%s)", what);
	if ((port->flags & GUARD_F_TRUSTED_ROUTER) &&
	    (v == GUARD_DROP_RA || v == GUARD_DROP_REDIRECT ||
	     v == GUARD_DROP_DHCP_SERVER))
		fg_fail("guard_check_frame: %s from a trusted router (%s)",
			fg_name(v), what);
	if ((port->flags & GUARD_F_ALLOW_LLC) && v == GUARD_DROP_LLC)
		fg_fail("guard_check_frame: drop_llc with GUARD_F_ALLOW_LLC (%s)",
			what);
	if (fg_is_pass(v)) {
		for (int k = 0; k < 4; k++) {
			p2 = *port;
			if (k == 0)
				p2.flags |= GUARD_F_L3_ANY;
			else if (k == 1)
				p2.flags |= GUARD_F_TRUSTED_ROUTER;
			else if (k == 3)
				p2.flags |= GUARD_F_ALLOW_LLC;
			if (k == 2 && p2.n_ip4 < GUARD_ADDR_MAX) {
				fg_fill(s, p2.ip4[p2.n_ip4].addr, 4);
				p2.ip4[p2.n_ip4++].len = (uint8_t)fuzz_below(s, 33);
			}
			if (k == 2 && p2.n_ip6 < GUARD_ADDR_MAX) {
				fg_fill(s, p2.ip6[p2.n_ip6].addr, 16);
				p2.ip6[p2.n_ip6++].len = (uint8_t)fuzz_below(s, 129);
			}
			again = guard_check_frame(&p2, rec, hdr, hl, mtu, NULL);
			if (again != v)
				fg_fail("guard_check_frame: %s, but %s with %s "
					"(%s)", fg_name(v), fg_name(again),
					k == 0 ? "GUARD_F_L3_ANY" : k == 1 ?
					"GUARD_F_TRUSTED_ROUTER" : k == 3 ?
					"GUARD_F_ALLOW_LLC" : "one more prefix",
					what);
		}
	}
	return v;
}

/**
 * fg_one() - one iteration: make a frame, ask the guard, check the verdicts
 * @s:		PRNG
 * @port:	the port (its flags are drawn here)
 * @scratch:	RING_FRAME_MAX + 64 bytes to build frames in
 */
static void fg_one(uint64_t *s, struct guard_port *port, uint8_t *scratch)
{
	static const uint32_t mtus[] = { 1500, 9000, 68, 1280, 65535 - 18 };
	int t = (int)fuzz_below(s, FG__T_MAX);
	struct fg_b b = { .p = scratch, .limit = GUARD_HDR_COPY };
	int vf, again, want = FG_UNKNOWN, l2v, built = 0;
	uint32_t mtu, len, hl, ghl = 0, segs = 1;
	struct ring_vnet_hdr vnet;
	char what[96];
	struct ring_rec rec;
	uint32_t lim;
	struct guard_frame lg;
	uint8_t *frame, *hdr;
	size_t n;

	port->flags = (uint32_t)fuzz_below(s, 8);
	if (!fuzz_below(s, 16))
		port->flags |= (uint32_t)fuzz_rand(s) & ~7u;
	mtu = fuzz_below(s, 4) ? mtus[fuzz_below(s, 5)] : (uint32_t)fuzz_rand(s);
	if (t >= FG_S_IPV4) {
		fg_mac(s, scratch, port->mac);
		if (fuzz_below(s, 8))
			memcpy(scratch + 6, port->mac, 6);
		else
			fg_mac(s, scratch + 6, port->mac);
		memcpy(scratch + 12, t == FG_S_IPV4 ? "\x08\x00" : t == FG_S_ARP ?
		       "\x08\x06" : "\x86\xdd", 2);
		b.n = 14;
		want = t == FG_S_IPV4 ? fg_s_ipv4(s, &b, port) :
		       t == FG_S_ARP ? fg_s_arp(s, &b, port) :
		       fg_s_ipv6(s, &b, port);
		len = b.n;
		if (!b.nopad && !fuzz_below(s, 3)) {	/* Ethernet padding */
			n = (size_t)fuzz_below(s, 24);
			fg_fill(s, scratch + len, n);
			len += (uint32_t)n;
		}
		if (fuzz_below(s, 2))
			mtu = 65535 - 18;
		fg_vnet(s, &b, len, mtu, &vnet);	/* it may set the TCP header length */
		built = 1;
		if (b.gso_drop && fuzz_below(s, 4))	/* a DHCP message: rarely GSO */
			vnet.gso_type = RING_VNET_GSO_NONE;
		if (want != FG_UNKNOWN && b.gso_drop &&
		    vnet.gso_type != RING_VNET_GSO_NONE)
			want = GUARD_DROP_GSO;	/* the DHCP guard's, before the vnet's */
		else if (want == FG_OK)
			want = fg_vnet_want(&b, &vnet, len, mtu, &ghl, &segs);
		if (!fuzz_below(s, 3)) {		/* then mutated */
			/* in the headers, or anywhere in a DHCP message */
			lim = len - 14 > GUARD_HDR_COPY && fuzz_below(s, 2) ?
			      (len - 14 < GUARD_HDR_COPY_MAX ? len - 14 :
			       GUARD_HDR_COPY_MAX) : GUARD_HDR_COPY;
			for (uint64_t k = 1 + fuzz_below(s, 4); k; k--)
				scratch[14 + fuzz_below(s, lim)] ^=
					(uint8_t)(1u << fuzz_below(s, 8));
			if (!fuzz_below(s, 4))
				len = 14 + (uint32_t)fuzz_below(s, len - 13);
			want = FG_UNKNOWN;
			fg_tot.mutated++;
		}
	} else {
		len = fg_frame_len(s, mtu);
		n = fg_template(s, t, scratch, port->mac);
		fg_fill(s, scratch + n,
			len > n ? (len - n < 64 ? len - n : 64) : 0);
		for (uint64_t k = fuzz_below(s, 4); k; k--)	/* mutate */
			scratch[fuzz_below(s, 64)] ^= (uint8_t)(1u << fuzz_below(s, 8));
	}

	frame = malloc(len ? len : 1);
	hl = len < GUARD_HDR_COPY ? len : GUARD_HDR_COPY;
	hdr = malloc(hl ? hl : 1);
	if (!frame || !hdr)
		fg_fail("malloc");
	memcpy(frame, scratch, len);
	memset(&rec, 0, sizeof(rec));
	/* the private copy: the frame's first bytes, random past a short one */
	fg_fill(s, rec.l2, sizeof(rec.l2));
	memcpy(rec.l2, frame, len < 14 ? len : 14);
	memcpy(hdr, frame, hl);
	if (built) {
		rec.vnet = vnet;
	} else if (fuzz_below(s, 3)) {
		rec.vnet.gso_type = (uint8_t)(fuzz_below(s, 2) ? 0 :
				    1 + fuzz_below(s, 5));
		rec.vnet.gso_size = (uint16_t)fuzz_rand(s);
	} else {
		fg_fill(s, (uint8_t *)&rec.vnet, sizeof(rec.vnet));
	}
	rec.frame_len = len;
	rec.frame = frame;
	rec.pos = fuzz_rand(s) & ~63ull;
	snprintf(what, sizeof(what), "template %s%s", fg_template_names[t],
		 t >= FG_S_IPV4 && want == FG_UNKNOWN ? ", mutated" : "");

	/* as the switch does: the longer private copy the guard asks for */
	if (guard_check_frame(port, &rec, hdr, hl, mtu, &lg) ==
	    GUARD_DROP_HIDDEN && lg.want > hl && lg.want <= len &&
	    lg.want <= GUARD_HDR_COPY_MAX) {
		free(hdr);
		hdr = malloc(lg.want);
		if (!hdr)
			fg_fail("malloc");
		memcpy(hdr, frame, lg.want);
		hl = lg.want;
		fg_tot.long_copies++;
	}

	l2v = fg_ref(port->mac, rec.l2, len, rec.vnet.gso_type, mtu);
	vf = fg_check_frame(s, port, &rec, hdr, hl, mtu, l2v, want, ghl, segs,
			    what);

	/* rule 1: the peer rewrites the frame; the verdicts must not move */
	for (uint32_t i = 0; i < len; i++)
		frame[i] = (uint8_t)~frame[i];
	again = guard_check_frame(port, &rec, hdr, hl, mtu, NULL);
	if (again != vf)
		fg_fail("guard_check_frame: verdict changed from %s to %s when "
			"only the shared frame bytes changed (%s)", fg_name(vf),
			fg_name(again), what);
	free(hdr);
	free(frame);
	fg_tot.verdicts[vf]++;
	fg_tot.templates[t]++;
	fg_tot.oracle += want != FG_UNKNOWN;
}

/**
 * fg_init() - the scratch buffer the iterations share
 *
 * Return: 0, or 2 without memory
 */
static int fg_init(void)
{
	fg.scratch = calloc(1, RING_FRAME_MAX + 64);
	return fg.scratch ? 0 : 2;
}

/**
 * fg_episode() - one episode: a port, then @iters frames
 * @seed:	episode seed
 * @iters:	iterations
 */
static void fg_episode(uint64_t seed, unsigned int iters)
{
	struct guard_port port;
	uint64_t s = seed;

	fg_policy(&s, &port);
	mcast_destroy(fg_mc);	/* every episode from an empty table: it replays */
	fg_mc = mcast_create();
	fg_mc_now = 0;
	fg_mc_rng = seed ^ 0x6d63617374ull;	/* "mcast" */
	if (!fg_mc)
		fg_fail("mcast_create");
	for (fg.iter = 0; fg.iter < iters; fg.iter++) {
		fg_one(&s, &port, fg.scratch);
		fg_tot.iterations++;
	}
}

/**
 * fg_finish() - the summary, one JSON object on stdout
 * @secs:	wall time
 */
static void fg_finish(double secs)
{
	free(fg.scratch);
	mcast_destroy(fg_mc);
	printf("{\"fuzzer\": \"guard\", \"seed\": %" PRIu64 ", \"episodes\": %"
	       PRIu64 ", \"iterations_per_episode\": %u, \"iterations\": %" PRIu64
	       ", \"seconds\": %.1f, \"oracle\": %" PRIu64 ", \"mutated\": %"
	       PRIu64 ", \"long_copies\": %" PRIu64 ", \"csum_passed\": %"
	       PRIu64 ", \"gso_passed\": %" PRIu64 ", \"verdicts\": {",
	       fuzz_run.first, fuzz_run.episodes, fuzz_run.iters,
	       fg_tot.iterations, secs, fg_tot.oracle, fg_tot.mutated,
	       fg_tot.long_copies, fg_tot.csum_passed, fg_tot.gso_passed);
	for (unsigned int i = 0; i < GUARD__MAX; i++)
		printf("%s\"%s\": %" PRIu64, i ? ", " : "", guard_verdict_name(i),
		       fg_tot.verdicts[i]);
	printf("}, \"templates\": {");
	for (unsigned int i = 0; i < FG__T_MAX; i++)
		printf("%s\"%s\": %" PRIu64, i ? ", " : "", fg_template_names[i],
		       fg_tot.templates[i]);
	printf("}}\n");
}

const struct fuzz_target fuzz_target = {
	.name = "guard",
	.iters_default = FG_ITERS_DEFAULT,
	.init = fg_init,
	.episode = fg_episode,
	.finish = fg_finish,
};
