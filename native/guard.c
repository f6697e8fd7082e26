// SPDX-License-Identifier: MIT
/* guard.c - what a partition may send: the per-frame checks of A2H frames
 *
 * DOC: Theory of operation
 *
 * The rules are at the top of guard.h. The switch calls guard_check_frame()
 * once per frame it peeked from an A2H ring and counts a drop under the
 * counter the verdict names.
 *
 * The L3 guard reads one private copy, @hdr, and two bounds decide what a
 * header that does not fit means:
 *
 *   0        14                        limit          end       frame_len
 *   |  Eth   |  L3 header, ext, L4 ... |              |  padding   |
 *   |<------------- the copy --------->|              |            |
 *                                      |<-- hidden -->|<-malformed->
 *
 * @end is where the L3 packet ends (IPv4 total length, IPv6 payload length;
 * the frame's end for ARP), never past the frame: a header past @end is
 * malformed. @limit is the end of the copy (hdr_len, at most the frame
 * length): a header inside the packet but past @limit is hidden from the
 * guard, and a frame that hides what the guard must see is dropped. No byte
 * at or past @limit is ever read, so the verdict cannot depend on one.
 *
 * The L3 guard leaves in the parse where it found the L4 header (@l4, 0
 * for none) and whether the packet is a fragment; guard_vnet() holds the
 * vnet header's requests against that, so a checksum lands only on the
 * checksum field of the header the guard parsed and a GSO frame is cut
 * into segments of the packet it is:
 *
 *   |  Eth  |  IPv4/IPv6 (+ext)  |  TCP (+options) / UDP  |  payload ...  |
 *   0       14                   l4  ^                    hl
 *                                    l4 + 16 (TCP), + 6 (UDP): the only
 *                                    place csum_start + csum_offset may be
 *   segments: ceil((frame_len - hl) / gso_size), each hl + gso_size or less
 *
 * A DHCP client message is read whole, options included, which lie past
 * GUARD_HDR_COPY: when it runs past @limit, the verdict is drop_hidden and
 * @want says how long a copy would hold it (its UDP datagram's end); the
 * switch makes that copy, at most GUARD_HDR_COPY_MAX bytes, only for such
 * a frame, and asks again. The common frame costs one copy and one call.
 */
#include <string.h>

#include "guard.h"

static const char *const guard_verdict_names[GUARD__MAX] = {
	[GUARD_PASS_UNICAST]		= "pass_unicast",
	[GUARD_PASS_GROUP]		= "pass_group",
	[GUARD_DROP_SPOOF]		= "drop_spoof",
	[GUARD_DROP_VLAN]		= "drop_vlan",
	[GUARD_DROP_MTU]		= "drop_mtu",
	[GUARD_DROP_LOOP]		= "drop_loop",
	[GUARD_DROP_BRIDGE_GROUP]	= "drop_bridge_group",
	[GUARD_DROP_MALFORMED]		= "drop_malformed",
	[GUARD_DROP_HIDDEN]		= "drop_hidden",
	[GUARD_DROP_FRAGMENT]		= "drop_fragment",
	[GUARD_DROP_IP_SPOOF]		= "drop_ip_spoof",
	[GUARD_DROP_ARP_SPOOF]		= "drop_arp_spoof",
	[GUARD_DROP_ND_SPOOF]		= "drop_nd_spoof",
	[GUARD_DROP_RA]			= "drop_ra",
	[GUARD_DROP_REDIRECT]		= "drop_redirect",
	[GUARD_DROP_DHCP_SERVER]	= "drop_dhcp_server",
	[GUARD_DROP_DHCP_SPOOF]		= "drop_dhcp_spoof",
	[GUARD_DROP_CSUM_OFFSET]	= "drop_csum_offset",
	[GUARD_DROP_GSO]		= "drop_gso",
	[GUARD_DROP_CISCO_GROUP]	= "drop_cisco_group",
	[GUARD_DROP_MAC_CONTROL]	= "drop_mac_control",
	[GUARD_DROP_EAPOL]		= "drop_eapol",
	[GUARD_DROP_LLC]		= "drop_llc",
};

/* A check with no objection: the destination class decides. */
#define GUARD_OK		GUARD_PASS_UNICAST

#define GUARD_IPPROTO_HOPOPTS	0u
#define GUARD_IPPROTO_ICMP	1u
#define GUARD_IPPROTO_IGMP	2u
#define GUARD_IPPROTO_TCP	6u
#define GUARD_IPPROTO_UDP	17u
#define GUARD_IPPROTO_ROUTING	43u
#define GUARD_IPPROTO_FRAGMENT	44u
#define GUARD_IPPROTO_AH	51u
#define GUARD_IPPROTO_ICMPV6	58u
#define GUARD_IPPROTO_DSTOPTS	60u

#define GUARD_ICMP_REDIRECT	5u
#define GUARD_ICMP6_MLD_REPORT	131u
#define GUARD_ICMP6_MLD_DONE	132u
#define GUARD_ICMP6_RS		133u
#define GUARD_ICMP6_RA		134u
#define GUARD_ICMP6_NS		135u
#define GUARD_ICMP6_NA		136u
#define GUARD_ICMP6_REDIRECT	137u
#define GUARD_ICMP6_MLD2_REPORT	143u

#define GUARD_ND_OPT_SLLA	1u
#define GUARD_ND_OPT_TLLA	2u

#define GUARD_TCP_CSUM_OFF	16u	/* struct tcphdr, check */
#define GUARD_UDP_CSUM_OFF	6u	/* struct udphdr, check */
#define GUARD_CSUM_NONE		0x10000u	/* no 16-bit csum_offset is this */

#define GUARD_PORT_BOOTPS	67u
#define GUARD_PORT_BOOTPC	68u
#define GUARD_PORT_DHCP6_CLIENT	546u
#define GUARD_PORT_DHCP6_SERVER	547u
#define GUARD_BOOTREQUEST	1u
#define GUARD_BOOTREPLY		2u

/* DHCP (RFC 2131, 2132): the BOOTP header, the options, the message types */
#define GUARD_DHCP_FIXED	236u	/* op .. file, before the magic cookie */
#define GUARD_DHCP_CIADDR	12u
#define GUARD_DHCP_CHADDR	28u
#define GUARD_DHCP_SNAME	44u	/* 64 bytes */
#define GUARD_DHCP_FILE		108u	/* 128 bytes */
#define GUARD_DHCP_COOKIE	0x63825363u
#define GUARD_DHCP_OPT_PAD	0u
#define GUARD_DHCP_OPT_REQ_IP	50u
#define GUARD_DHCP_OPT_OVERLOAD	52u
#define GUARD_DHCP_OPT_TYPE	53u
#define GUARD_DHCP_OPT_CLIENT_ID 61u
#define GUARD_DHCP_OPT_END	255u
#define GUARD_DHCPDISCOVER	1u
#define GUARD_DHCPREQUEST	3u
#define GUARD_DHCPDECLINE	4u
#define GUARD_DHCPRELEASE	7u
#define GUARD_DHCPINFORM	8u
#define GUARD_DHCP_CID_ETHER	1u	/* client identifier: htype 1 + MAC */
#define GUARD_DHCP_CID_DUID	255u	/* RFC 4361: IAID + DUID */

/* DHCPv6 (RFC 8415): message types, options, DUID types */
#define GUARD_DHCP6_SOLICIT	1u
#define GUARD_DHCP6_REQUEST	3u
#define GUARD_DHCP6_CONFIRM	4u
#define GUARD_DHCP6_RENEW	5u
#define GUARD_DHCP6_REBIND	6u
#define GUARD_DHCP6_RELEASE	8u
#define GUARD_DHCP6_DECLINE	9u
#define GUARD_DHCP6_INFO_REQ	11u
#define GUARD_DHCP6_OPT_CLIENTID 1u
#define GUARD_DHCP6_OPT_IA_NA	3u
#define GUARD_DHCP6_OPT_IA_TA	4u
#define GUARD_DHCP6_OPT_IAADDR	5u
#define GUARD_DUID_LLT		1u
#define GUARD_DUID_LL		3u
#define GUARD_HWTYPE_ETHER	1u

/**
 * struct guard_pkt - one frame's L3 parse: the copy and its two bounds
 * @port:	the sending port
 * @hdr:	the private copy of the frame's first bytes
 * @limit:	bytes of @hdr the guard may read (the copy, within the frame)
 * @end:	end of the L3 packet in the frame, <= frame length
 * @l4:		offset of the L4 header the L3 guard parsed (its least
 *		header inside @end and @limit), 0 if it reached none
 * @proto:	its protocol, if @l4
 * @frag:	the packet is a fragment (an IPv4 MF flag, an IPv6 fragment
 *		header), if @l4
 * @want:	0, or the copy a message read whole needs (rule 2): set with
 *		GUARD_DROP_HIDDEN
 * @gso:	the vnet header asks for segmentation
 */
struct guard_pkt {
	const struct guard_port *port;
	const uint8_t *hdr;
	uint32_t limit;
	uint32_t end;
	uint32_t l4;
	unsigned int proto;
	int frag;
	uint32_t want;
	int gso;
};

/**
 * guard_verdict_name() - name of a verdict, as the fuzzer and docs spell it
 * @verdict:	enum guard_verdict value
 *
 * Return: a static string, or NULL past GUARD__MAX
 */
const char *guard_verdict_name(unsigned int verdict)
{
	if (verdict >= GUARD__MAX)
		return NULL;
	return guard_verdict_names[verdict];
}

/**
 * guard_be16() - a big-endian 16-bit field
 * @p:		its first byte
 *
 * Return: the value
 */
static inline unsigned int guard_be16(const uint8_t *p)
{
	return (unsigned int)p[0] << 8 | p[1];
}

/**
 * guard_need() - are @n bytes at @off inside the packet and the copy?
 * @k:		the parse
 * @off:	offset in the frame
 * @n:		bytes the caller is about to read
 *
 * Return: GUARD_OK, GUARD_DROP_MALFORMED past the packet's end, or
 * GUARD_DROP_HIDDEN inside the packet but past the copy
 */
static enum guard_verdict guard_need(const struct guard_pkt *k, uint32_t off,
				     uint32_t n)
{
	uint64_t want = (uint64_t)off + n;

	if (want > k->end)
		return GUARD_DROP_MALFORMED;
	if (want > k->limit)
		return GUARD_DROP_HIDDEN;
	return GUARD_OK;
}

/**
 * guard_prefix_has() - is @a inside the prefix @p/@len?
 * @p:		prefix address, @bits / 8 bytes
 * @len:	prefix length (more than @bits counts as @bits)
 * @a:		address, @bits / 8 bytes
 * @bits:	32 or 128
 *
 * Return: 1 or 0
 */
static int guard_prefix_has(const uint8_t *p, unsigned int len,
			    const uint8_t *a, unsigned int bits)
{
	unsigned int full, rest;

	if (len > bits)
		len = bits;
	full = len / 8;
	rest = len % 8;
	if (memcmp(p, a, full))
		return 0;
	return !rest || !((p[full] ^ a[full]) & (uint8_t)(0xffu << (8 - rest)));
}

/**
 * guard_has4() - is an IPv4 address in the port's set?
 * @port:	the port
 * @a:		four bytes
 *
 * Return: 1 or 0
 */
static int guard_has4(const struct guard_port *port, const uint8_t *a)
{
	unsigned int n = port->n_ip4 < GUARD_ADDR_MAX ? port->n_ip4 :
			 GUARD_ADDR_MAX;

	for (unsigned int i = 0; i < n; i++)
		if (guard_prefix_has(port->ip4[i].addr, port->ip4[i].len, a, 32))
			return 1;
	return 0;
}

/**
 * guard_has6() - is an IPv6 address in the port's set?
 * @port:	the port
 * @a:		sixteen bytes
 *
 * Return: 1 or 0
 */
static int guard_has6(const struct guard_port *port, const uint8_t *a)
{
	unsigned int n = port->n_ip6 < GUARD_ADDR_MAX ? port->n_ip6 :
			 GUARD_ADDR_MAX;

	for (unsigned int i = 0; i < n; i++)
		if (guard_prefix_has(port->ip6[i].addr, port->ip6[i].len, a, 128))
			return 1;
	return 0;
}

/**
 * guard_zero() - are @n bytes all zero (0.0.0.0, ::)?
 * @p:		bytes
 * @n:		how many
 *
 * Return: 1 or 0
 */
static int guard_zero(const uint8_t *p, unsigned int n)
{
	uint8_t acc = 0;

	while (n--)
		acc |= *p++;
	return !acc;
}

/**
 * guard_l4_min() - bytes of an upper-layer header the guard requires
 * @proto:	IP protocol / IPv6 next header
 *
 * Return: TCP 20, UDP 8, ICMP and ICMPv6 8, anything else 0
 */
static uint32_t guard_l4_min(unsigned int proto)
{
	switch (proto) {
	case GUARD_IPPROTO_TCP:
		return 20;
	case GUARD_IPPROTO_UDP:
	case GUARD_IPPROTO_ICMP:
	case GUARD_IPPROTO_ICMPV6:
		return 8;
	default:
		return 0;
	}
}

/* DHCP guard ------------------------------------------------------------------ */

/**
 * guard_be32() - a big-endian 32-bit field
 * @p:		its first byte
 *
 * Return: the value
 */
static inline uint32_t guard_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/**
 * guard_dhcp_msg() - a DHCP or DHCPv6 client message's bounds: all of it
 * @k:		the parse
 * @l4:		offset of the UDP header (its 8 bytes inside the copy)
 * @frag:	the packet is a first fragment: more of it follows
 * @mend:	where the message ends (the datagram's end), out
 *
 * The guard reads a client message whole (its options), so the message
 * lies inside the packet and inside the copy, in a frame nothing splits: a
 * first fragment hides the rest, and the later segments of a GSO frame
 * would be messages no check read. A message that runs past the copy sets
 * @k->want to the copy it needs (rule 2).
 *
 *   l4      l4 + 8                              *mend = l4 + UDP length
 *   | UDP   | the message: header, options ...  |  <= @k->end, <= @k->limit
 *
 * Return: GUARD_OK, GUARD_DROP_FRAGMENT, GUARD_DROP_GSO,
 * GUARD_DROP_MALFORMED (a UDP length below 8 or past the packet), or
 * GUARD_DROP_HIDDEN
 */
static enum guard_verdict guard_dhcp_msg(struct guard_pkt *k, uint32_t l4,
					 int frag, uint32_t *mend)
{
	uint32_t ulen = guard_be16(k->hdr + l4 + 4);

	if (frag)
		return GUARD_DROP_FRAGMENT;
	if (k->gso)
		return GUARD_DROP_GSO;
	if (ulen < 8 || (uint64_t)l4 + ulen > k->end)
		return GUARD_DROP_MALFORMED;
	*mend = l4 + ulen;
	if (*mend > k->limit) {
		k->want = *mend;
		return GUARD_DROP_HIDDEN;
	}
	return GUARD_OK;
}

/**
 * guard_duid() - a DUID that names a link-layer address names the port's
 * @port:	the port
 * @d:		the DUID
 * @n:		its length
 *
 * DUID-LLT (type, hardware type, time, address) and DUID-LL (type,
 * hardware type, address) name one: over Ethernet (hardware type 1, six
 * bytes) the port's MAC, nothing else. DUID-EN, DUID-UUID and unknown
 * types name none (RFC 8415 11).
 *
 * Return: GUARD_OK, GUARD_DROP_MALFORMED (no type), GUARD_DROP_DHCP_SPOOF
 */
static enum guard_verdict guard_duid(const struct guard_port *port,
				     const uint8_t *d, uint32_t n)
{
	unsigned int type, at;

	if (n < 2)
		return GUARD_DROP_MALFORMED;
	type = guard_be16(d);
	if (type != GUARD_DUID_LLT && type != GUARD_DUID_LL)
		return GUARD_OK;
	at = type == GUARD_DUID_LLT ? 8 : 4;
	if (n != at + 6 || guard_be16(d + 2) != GUARD_HWTYPE_ETHER ||
	    memcmp(d + at, port->mac, 6))
		return GUARD_DROP_DHCP_SPOOF;
	return GUARD_OK;
}

#define GUARD_DHCP_SEEN_TYPE	0x1u
#define GUARD_DHCP_SEEN_OVERLOAD 0x2u
#define GUARD_DHCP_SEEN_REQ_IP	0x4u
#define GUARD_DHCP_SEEN_CID	0x8u

/**
 * struct guard_dhcp4_opts - the DHCP options the guard reads
 * @seen:	GUARD_DHCP_SEEN_* bits: the options found
 * @type:	message type (option 53)
 * @overload:	option overload (52): 1 file, 2 sname, 3 both
 * @req_ip:	offset of the requested address (50), 4 bytes
 * @cid:	offset of the client identifier (61)
 * @cid_len:	its length, >= 2
 */
struct guard_dhcp4_opts {
	unsigned int seen;
	unsigned int type;
	unsigned int overload;
	uint32_t req_ip;
	uint32_t cid;
	uint32_t cid_len;
};

/**
 * guard_dhcp4_opts() - walk one area of DHCP options
 * @k:		the parse
 * @off:	the area's first byte
 * @end:	its end, inside the copy
 * @o:		what was found, in and out
 *
 * Pad and end are one byte, every other option a code, a length and its
 * value inside the area (RFC 2132). An option the guard reads that comes
 * twice is malformed: a server may join the two (RFC 3396) or take either,
 * the guard would have checked one. At most @end - @off steps.
 *
 * Return: GUARD_OK or GUARD_DROP_MALFORMED
 */
static enum guard_verdict guard_dhcp4_opts(const struct guard_pkt *k,
					   uint32_t off, uint32_t end,
					   struct guard_dhcp4_opts *o)
{
	const uint8_t *h = k->hdr;
	unsigned int code, len, bit;

	while (off < end) {
		code = h[off];
		if (code == GUARD_DHCP_OPT_END)
			break;
		if (code == GUARD_DHCP_OPT_PAD) {
			off++;
			continue;
		}
		if (end - off < 2 || h[off + 1] > end - off - 2)
			return GUARD_DROP_MALFORMED;
		len = h[off + 1];
		switch (code) {
		case GUARD_DHCP_OPT_TYPE:
			bit = GUARD_DHCP_SEEN_TYPE;
			o->type = h[off + 2];
			break;
		case GUARD_DHCP_OPT_OVERLOAD:
			bit = GUARD_DHCP_SEEN_OVERLOAD;
			o->overload = h[off + 2];
			break;
		case GUARD_DHCP_OPT_REQ_IP:
			bit = GUARD_DHCP_SEEN_REQ_IP;
			o->req_ip = off + 2;
			break;
		case GUARD_DHCP_OPT_CLIENT_ID:
			bit = GUARD_DHCP_SEEN_CID;
			o->cid = off + 2;
			o->cid_len = len;
			break;
		default:
			bit = 0;
		}
		if ((o->seen & bit) || (bit == GUARD_DHCP_SEEN_REQ_IP && len != 4) ||
		    (bit == GUARD_DHCP_SEEN_CID && len < 2) ||
		    (bit && bit != GUARD_DHCP_SEEN_REQ_IP &&
		     bit != GUARD_DHCP_SEEN_CID && len != 1))
			return GUARD_DROP_MALFORMED;
		o->seen |= bit;
		off += 2 + len;
	}
	return GUARD_OK;
}

/**
 * guard_dhcp4() - the DHCP guard on a UDP datagram over IPv4
 * @k:		the parse
 * @l4:		offset of the UDP header (its 8 bytes inside the copy)
 * @frag:	a first fragment: more of the packet follows
 *
 * guard.h has the rules, in the order checked here: a server's or relay
 * agent's message; the client message whole, its BOOTP header and options
 * (the options field, then file and sname if overloaded); its type; the
 * port's MAC in chaddr and in the client identifier; then, but under
 * GUARD_F_L3_ANY, a RELEASE's ciaddr and a DECLINE's requested address in
 * the port's set. Other UDP passes.
 *
 * Return: GUARD_OK or a drop verdict
 */
static enum guard_verdict guard_dhcp4(struct guard_pkt *k, uint32_t l4,
				      int frag)
{
	const struct guard_port *port = k->port;
	const uint8_t *h = k->hdr, *m = k->hdr + l4 + 8, *cid;
	int trusted = !!(port->flags & GUARD_F_TRUSTED_ROUTER);
	unsigned int sport = guard_be16(h + l4), dport = guard_be16(h + l4 + 2);
	struct guard_dhcp4_opts o = { 0 };
	uint32_t mend, at = l4 + 8;
	enum guard_verdict rc;

	if (sport == GUARD_PORT_BOOTPS || dport == GUARD_PORT_BOOTPC)
		return trusted ? GUARD_OK : GUARD_DROP_DHCP_SERVER;
	if (dport != GUARD_PORT_BOOTPS)
		return GUARD_OK;
	rc = guard_dhcp_msg(k, l4, frag, &mend);
	if (rc)
		return rc;
	if (mend - at < GUARD_DHCP_FIXED)
		return GUARD_DROP_MALFORMED;
	if (m[0] == GUARD_BOOTREPLY)
		return trusted ? GUARD_OK : GUARD_DROP_DHCP_SERVER;
	if (m[0] != GUARD_BOOTREQUEST)
		return GUARD_DROP_MALFORMED;
	if (mend - at >= GUARD_DHCP_FIXED + 4 &&
	    guard_be32(m + GUARD_DHCP_FIXED) == GUARD_DHCP_COOKIE) {
		rc = guard_dhcp4_opts(k, at + GUARD_DHCP_FIXED + 4, mend, &o);
		if (!rc && (o.overload & 1))
			rc = guard_dhcp4_opts(k, at + GUARD_DHCP_FILE,
					      at + GUARD_DHCP_FILE + 128, &o);
		if (!rc && (o.overload & 2))
			rc = guard_dhcp4_opts(k, at + GUARD_DHCP_SNAME,
					      at + GUARD_DHCP_SNAME + 64, &o);
		if (rc)
			return rc;
	}
	if ((o.seen & GUARD_DHCP_SEEN_TYPE) && o.type != GUARD_DHCPDISCOVER &&
	    o.type != GUARD_DHCPREQUEST && o.type != GUARD_DHCPDECLINE &&
	    o.type != GUARD_DHCPRELEASE && o.type != GUARD_DHCPINFORM)
		return trusted ? GUARD_OK : GUARD_DROP_DHCP_SERVER;

	if (m[1] != GUARD_HWTYPE_ETHER || m[2] != 6 ||
	    memcmp(m + GUARD_DHCP_CHADDR, port->mac, 6))
		return GUARD_DROP_DHCP_SPOOF;
	if (o.seen & GUARD_DHCP_SEEN_CID) {
		cid = h + o.cid;
		if (cid[0] == GUARD_DHCP_CID_ETHER &&
		    (o.cid_len != 7 || memcmp(cid + 1, port->mac, 6)))
			return GUARD_DROP_DHCP_SPOOF;
		if (cid[0] == GUARD_DHCP_CID_DUID) {	/* IAID, then a DUID */
			if (o.cid_len < 5 + 2)
				return GUARD_DROP_MALFORMED;
			rc = guard_duid(port, cid + 5, o.cid_len - 5);
			if (rc)
				return rc;
		}
	}
	if (port->flags & GUARD_F_L3_ANY)
		return GUARD_OK;
	if (o.type == GUARD_DHCPRELEASE && !guard_has4(port, m + GUARD_DHCP_CIADDR))
		return GUARD_DROP_DHCP_SPOOF;
	if (o.type == GUARD_DHCPDECLINE && (!(o.seen & GUARD_DHCP_SEEN_REQ_IP) ||
					    !guard_has4(port, h + o.req_ip)))
		return GUARD_DROP_DHCP_SPOOF;
	return GUARD_OK;
}

/**
 * guard_dhcp6_ia() - the addresses of one IA_NA or IA_TA option
 * @k:		the parse
 * @off:	the option's value
 * @len:	its length, inside the message
 * @hl:		the IA's fields before its options (IA_NA 12, IA_TA 4)
 *
 * Every IA address option (OPTION_IAADDR) inside it names an address of
 * the port's IPv6 set. At most @len / 4 steps.
 *
 * Return: GUARD_OK, GUARD_DROP_MALFORMED or GUARD_DROP_DHCP_SPOOF
 */
static enum guard_verdict guard_dhcp6_ia(const struct guard_pkt *k,
					 uint32_t off, uint32_t len,
					 uint32_t hl)
{
	const uint8_t *h = k->hdr;
	uint32_t end = off + len, n;

	if (len < hl)
		return GUARD_DROP_MALFORMED;
	for (off += hl; off < end; off += 4 + n) {
		if (end - off < 4)
			return GUARD_DROP_MALFORMED;
		n = guard_be16(h + off + 2);
		if (n > end - off - 4)
			return GUARD_DROP_MALFORMED;
		if (guard_be16(h + off) != GUARD_DHCP6_OPT_IAADDR)
			continue;
		if (n < 24)	/* address, preferred and valid lifetimes */
			return GUARD_DROP_MALFORMED;
		if (!guard_has6(k->port, h + off + 4))
			return GUARD_DROP_DHCP_SPOOF;
	}
	return GUARD_OK;
}

/**
 * guard_dhcp6() - the DHCP guard on a UDP datagram over IPv6 (DHCPv6)
 * @k:		the parse
 * @l4:		offset of the UDP header (its 8 bytes inside the copy)
 * @frag:	a first fragment: more of the packet follows
 *
 * guard.h has the rules, in the order checked here: a server's or relay
 * agent's message; the client message whole, its options in order, each
 * inside the message: the client identifier (once) a DUID of the port's,
 * and, but under GUARD_F_L3_ANY, in a RELEASE or DECLINE every IA address
 * in the port's set. Other UDP passes.
 *
 * Return: GUARD_OK or a drop verdict
 */
static enum guard_verdict guard_dhcp6(struct guard_pkt *k, uint32_t l4,
				      int frag)
{
	const struct guard_port *port = k->port;
	const uint8_t *h = k->hdr;
	int trusted = !!(port->flags & GUARD_F_TRUSTED_ROUTER), rel;
	unsigned int sport = guard_be16(h + l4), dport = guard_be16(h + l4 + 2);
	unsigned int code, ids = 0;
	uint32_t mend, off = l4 + 8, n;
	enum guard_verdict rc;

	if (sport == GUARD_PORT_DHCP6_SERVER || dport == GUARD_PORT_DHCP6_CLIENT)
		return trusted ? GUARD_OK : GUARD_DROP_DHCP_SERVER;
	if (dport != GUARD_PORT_DHCP6_SERVER)
		return GUARD_OK;
	rc = guard_dhcp_msg(k, l4, frag, &mend);
	if (rc)
		return rc;
	if (mend - off < 4)	/* message type, transaction id */
		return GUARD_DROP_MALFORMED;
	switch (h[off]) {
	case GUARD_DHCP6_SOLICIT:
	case GUARD_DHCP6_REQUEST:
	case GUARD_DHCP6_CONFIRM:
	case GUARD_DHCP6_RENEW:
	case GUARD_DHCP6_REBIND:
	case GUARD_DHCP6_RELEASE:
	case GUARD_DHCP6_DECLINE:
	case GUARD_DHCP6_INFO_REQ:
		break;
	default:
		return trusted ? GUARD_OK : GUARD_DROP_DHCP_SERVER;
	}
	rel = !(port->flags & GUARD_F_L3_ANY) &&
	      (h[off] == GUARD_DHCP6_RELEASE || h[off] == GUARD_DHCP6_DECLINE);
	for (off += 4; off < mend; off += 4 + n) {
		if (mend - off < 4)
			return GUARD_DROP_MALFORMED;
		code = guard_be16(h + off);
		n = guard_be16(h + off + 2);
		if (n > mend - off - 4)
			return GUARD_DROP_MALFORMED;
		if (code == GUARD_DHCP6_OPT_CLIENTID)
			rc = ids++ ? GUARD_DROP_MALFORMED :
			     guard_duid(port, h + off + 4, n);
		else if (rel && code == GUARD_DHCP6_OPT_IA_NA)
			rc = guard_dhcp6_ia(k, off + 4, n, 12);
		else if (rel && code == GUARD_DHCP6_OPT_IA_TA)
			rc = guard_dhcp6_ia(k, off + 4, n, 4);
		else
			rc = GUARD_OK;
		if (rc)
			return rc;
	}
	return GUARD_OK;
}

/**
 * guard_ipv4() - the IPv4 identity, DHCP and redirect guard
 * @k:		the parse, @k->end the frame's length
 * @frame_len:	the frame's length
 *
 * Return: GUARD_OK or a drop verdict
 */
static enum guard_verdict guard_ipv4(struct guard_pkt *k, uint32_t frame_len)
{
	const struct guard_port *port = k->port;
	const uint8_t *h = k->hdr, *ip = k->hdr + RING_ETH_HLEN;
	int any = !!(port->flags & GUARD_F_L3_ANY);
	int trusted = !!(port->flags & GUARD_F_TRUSTED_ROUTER);
	uint32_t ihl, tot, l4;
	unsigned int frag, proto;
	enum guard_verdict rc;
	int unspec, more;

	rc = guard_need(k, RING_ETH_HLEN, 20);
	if (rc)
		return rc;
	ihl = (ip[0] & 0xfu) * 4u;
	tot = guard_be16(ip + 2);
	if (ip[0] >> 4 != 4 || ihl < 20 || tot < ihl ||
	    (uint64_t)RING_ETH_HLEN + tot > frame_len)
		return GUARD_DROP_MALFORMED;
	k->end = RING_ETH_HLEN + tot;
	rc = guard_need(k, RING_ETH_HLEN, ihl);
	if (rc)
		return rc;

	unspec = guard_zero(ip + 12, 4);
	if (!any && !unspec && !guard_has4(port, ip + 12))
		return GUARD_DROP_IP_SPOOF;
	frag = guard_be16(ip + 6);
	more = !!(frag & 0x2000u);
	if (frag & 0x1fffu)	/* not the first fragment: no L4 header here */
		return !any && unspec ? GUARD_DROP_IP_SPOOF : GUARD_OK;

	proto = ip[9];
	l4 = RING_ETH_HLEN + ihl;
	rc = guard_need(k, l4, guard_l4_min(proto));
	if (rc)
		return more && rc == GUARD_DROP_MALFORMED ? GUARD_DROP_FRAGMENT
							  : rc;
	k->l4 = l4;
	k->proto = proto;
	k->frag = more;
	if (!any && unspec &&	/* 0.0.0.0 only in a DHCP client message */
	    (more || proto != GUARD_IPPROTO_UDP || guard_need(k, l4, 9) ||
	     guard_be16(h + l4) != GUARD_PORT_BOOTPC ||
	     guard_be16(h + l4 + 2) != GUARD_PORT_BOOTPS ||
	     h[l4 + 8] != GUARD_BOOTREQUEST))
		return GUARD_DROP_IP_SPOOF;
	if (proto == GUARD_IPPROTO_UDP)
		return guard_dhcp4(k, l4, more);
	if (trusted)
		return GUARD_OK;
	if (proto == GUARD_IPPROTO_ICMP && h[l4] == GUARD_ICMP_REDIRECT)
		return GUARD_DROP_REDIRECT;
	return GUARD_OK;
}

/**
 * guard_arp() - the ARP identity guard
 * @k:		the parse, @k->end the frame's length
 *
 * Return: GUARD_OK or a drop verdict
 */
static enum guard_verdict guard_arp(const struct guard_pkt *k)
{
	const struct guard_port *port = k->port;
	const uint8_t *a = k->hdr + RING_ETH_HLEN;
	enum guard_verdict rc;
	unsigned int op;

	rc = guard_need(k, RING_ETH_HLEN, 28);
	if (rc)
		return rc;
	op = guard_be16(a + 6);
	if (guard_be16(a) != 1 || guard_be16(a + 2) != GUARD_ETH_P_IP ||
	    a[4] != 6 || a[5] != 4 || (op != 1 && op != 2))
		return GUARD_DROP_MALFORMED;
	if (memcmp(a + 8, port->mac, 6))
		return GUARD_DROP_ARP_SPOOF;
	if (!(port->flags & GUARD_F_L3_ANY) && !guard_zero(a + 14, 4) &&
	    !guard_has4(port, a + 14))
		return GUARD_DROP_ARP_SPOOF;
	return GUARD_OK;
}

/**
 * guard_nd_opts() - walk neighbour discovery options inside the copy
 * @k:		the parse
 * @off:	first option's offset in the frame
 * @dad:	a DAD solicitation (source ::): no source link-layer option
 *
 * Every option lies inside the message and the copy, length non-zero; a
 * source or target link-layer address option is 8 bytes and carries the
 * port's MAC. At most (GUARD_HDR_COPY - @off) / 8 steps.
 *
 * Return: GUARD_OK or a drop verdict
 */
static enum guard_verdict guard_nd_opts(const struct guard_pkt *k,
					uint32_t off, int dad)
{
	const uint8_t *h = k->hdr;
	enum guard_verdict rc;
	uint32_t len;

	for (; off < k->end; off += len) {
		rc = guard_need(k, off, 2);
		if (rc)
			return rc;
		len = h[off + 1] * 8u;
		if (!len)
			return GUARD_DROP_MALFORMED;
		rc = guard_need(k, off, len);
		if (rc)
			return rc;
		if (h[off] != GUARD_ND_OPT_SLLA && h[off] != GUARD_ND_OPT_TLLA)
			continue;
		if (len != 8 || (dad && h[off] == GUARD_ND_OPT_SLLA))
			return GUARD_DROP_MALFORMED;
		if (memcmp(h + off + 2, k->port->mac, 6))
			return GUARD_DROP_ND_SPOOF;
	}
	return GUARD_OK;
}

/**
 * guard_ipv6() - the IPv6 identity, RA, redirect, ND and DHCPv6 guard
 * @k:		the parse, @k->end the frame's length
 * @frame_len:	the frame's length
 *
 * Return: GUARD_OK or a drop verdict
 */
static enum guard_verdict guard_ipv6(struct guard_pkt *k, uint32_t frame_len)
{
	const struct guard_port *port = k->port;
	const uint8_t *h = k->hdr, *ip = k->hdr + RING_ETH_HLEN;
	int any = !!(port->flags & GUARD_F_L3_ANY);
	int trusted = !!(port->flags & GUARD_F_TRUSTED_ROUTER);
	uint32_t off = RING_ETH_HLEN + 40, plen, hl;
	int unspec, first_frag = 0, frag_seen = 0;
	unsigned int nh, type;
	enum guard_verdict rc;

	rc = guard_need(k, RING_ETH_HLEN, 40);
	if (rc)
		return rc;
	plen = guard_be16(ip + 4);
	if (ip[0] >> 4 != 6 || (uint64_t)off + plen > frame_len)
		return GUARD_DROP_MALFORMED;
	if (plen)	/* 0: a jumbogram, or nothing; check up to the frame's end */
		k->end = off + plen;
	unspec = guard_zero(ip + 8, 16);
	if (!any && !unspec && !guard_has6(port, ip + 8))
		return GUARD_DROP_IP_SPOOF;

	/* extension headers, at most GUARD_EXT_MAX, each inside the copy */
	nh = ip[6];
	for (unsigned int n = 0;; n++) {
		if (nh != GUARD_IPPROTO_HOPOPTS && nh != GUARD_IPPROTO_ROUTING &&
		    nh != GUARD_IPPROTO_FRAGMENT && nh != GUARD_IPPROTO_AH &&
		    nh != GUARD_IPPROTO_DSTOPTS)
			break;
		if (n == GUARD_EXT_MAX)
			return GUARD_DROP_HIDDEN;
		if (nh == GUARD_IPPROTO_HOPOPTS && n)	/* RFC 8200 4.1 */
			return GUARD_DROP_MALFORMED;
		rc = guard_need(k, off, nh == GUARD_IPPROTO_FRAGMENT ? 8 : 2);
		if (rc)
			return rc;
		if (nh == GUARD_IPPROTO_FRAGMENT) {
			if (frag_seen++)
				return GUARD_DROP_MALFORMED;
			nh = h[off];
			if (guard_be16(h + off + 2) & 0xfff8u)	/* not first */
				return !any && unspec ? GUARD_DROP_IP_SPOOF
						      : GUARD_OK;
			first_frag = h[off + 3] & 1;
			off += 8;
			continue;
		}
		hl = nh == GUARD_IPPROTO_AH ? (h[off + 1] + 2u) * 4u
					    : (h[off + 1] + 1u) * 8u;
		rc = guard_need(k, off, hl);
		if (rc)
			return rc;
		nh = h[off];
		off += hl;
	}

	rc = guard_need(k, off, guard_l4_min(nh));
	if (rc)
		return first_frag && rc == GUARD_DROP_MALFORMED ?
		       GUARD_DROP_FRAGMENT : rc;
	k->l4 = off;
	k->proto = nh;
	k->frag = frag_seen;
	type = nh == GUARD_IPPROTO_ICMPV6 ? h[off] : 0;
	if (!any && unspec && type != GUARD_ICMP6_NS &&
	    type != GUARD_ICMP6_MLD_REPORT && type != GUARD_ICMP6_MLD2_REPORT)
		return GUARD_DROP_IP_SPOOF;
	if (nh == GUARD_IPPROTO_UDP)
		return guard_dhcp6(k, off, first_frag);
	if (nh != GUARD_IPPROTO_ICMPV6)
		return GUARD_OK;
	switch (type) {
	case GUARD_ICMP6_RA:
		return trusted ? GUARD_OK : GUARD_DROP_RA;
	case GUARD_ICMP6_REDIRECT:
		return trusted ? GUARD_OK : GUARD_DROP_REDIRECT;
	case GUARD_ICMP6_RS:
	case GUARD_ICMP6_NS:
	case GUARD_ICMP6_NA:
		break;
	default:
		return GUARD_OK;
	}
	if (first_frag || frag_seen)	/* RFC 6980: ND is never fragmented */
		return GUARD_DROP_FRAGMENT;
	hl = type == GUARD_ICMP6_RS ? 8 : 24;
	rc = guard_need(k, off, hl);
	if (rc)
		return rc;
	if (!any && (type == GUARD_ICMP6_NA || (type == GUARD_ICMP6_NS && unspec)) &&
	    !guard_has6(port, h + off + 8))
		return GUARD_DROP_ND_SPOOF;
	return guard_nd_opts(k, off + hl, type == GUARD_ICMP6_NS && unspec);
}

/**
 * guard_gso_segs() - the frames a GSO frame becomes, and their bytes
 * @frame_len:	the GSO frame's length
 * @hdr_len:	the headers each segment repeats (Ethernet to L4), at most
 *		@frame_len
 * @gso_size:	payload bytes per segment, > 0
 * @bytes:	their bytes, out: @frame_len + (segments - 1) * @hdr_len
 *
 * As the kernel cuts it (tcp_gso_segment(), __udp_gso_segment()): a payload
 * of at most @gso_size is one frame. The switch counts frames from the wire
 * with it too.
 *
 * Return: segments, at least 1
 */
uint32_t guard_gso_segs(uint32_t frame_len, uint32_t hdr_len,
			uint32_t gso_size, uint64_t *bytes)
{
	uint32_t pay = frame_len > hdr_len ? frame_len - hdr_len : 0;
	uint32_t segs = 1;

	if (gso_size && pay > gso_size)
		segs = pay / gso_size + !!(pay % gso_size);
	*bytes = frame_len + (uint64_t)(segs - 1) * hdr_len;
	return segs;
}

/**
 * guard_csum_field() - where an L4 protocol's checksum is, for NEEDS_CSUM
 * @proto:	IP protocol / IPv6 next header
 *
 * Return: TCP 16, UDP 6; GUARD_CSUM_NONE for every other protocol (no
 * Linux sender hands one to a device to checksum: guard.h)
 */
static uint32_t guard_csum_field(unsigned int proto)
{
	switch (proto) {
	case GUARD_IPPROTO_TCP:
		return GUARD_TCP_CSUM_OFF;
	case GUARD_IPPROTO_UDP:
		return GUARD_UDP_CSUM_OFF;
	default:
		return GUARD_CSUM_NONE;
	}
}

/**
 * guard_vnet() - what the vnet header asks for, held against the parse
 * @k:		the parse: where the L3 guard found the L4 header
 * @rec:	the frame's private copies: @rec->vnet is checked
 * @mtu:	largest L3 size of a segment
 * @gf:		@gf->hdr_len, @gf->segs, @gf->bytes, out, for a GSO frame
 *
 * guard.h has the rules: a checksum only at the checksum field of the TCP
 * or UDP header the guard parsed, a segmentation only of the packet it is,
 * in segments between the least the kernel makes and what fits the MTU.
 *
 * Return: GUARD_OK, GUARD_DROP_CSUM_OFFSET or GUARD_DROP_GSO
 */
static enum guard_verdict guard_vnet(const struct guard_pkt *k,
				     const struct ring_rec *rec, uint32_t mtu,
				     struct guard_frame *gf)
{
	const struct ring_vnet_hdr *v = &rec->vnet;
	unsigned int gso = v->gso_type & ~RING_VNET_GSO_ECN;
	unsigned int type = guard_be16(rec->l2 + 12);
	uint32_t thl, hl, pay;
	int ok;

	if ((v->flags & RING_VNET_F_NEEDS_CSUM) &&
	    (!k->l4 || k->frag || v->csum_start != k->l4 ||
	     v->csum_offset != guard_csum_field(k->proto)))
		return GUARD_DROP_CSUM_OFFSET;
	if (v->gso_type == RING_VNET_GSO_NONE)
		return GUARD_OK;
	/* without NEEDS_CSUM the kernel looks for the L4 header itself */
	if (!(v->flags & RING_VNET_F_NEEDS_CSUM))
		return GUARD_DROP_GSO;
	switch (gso) {
	case RING_VNET_GSO_TCPV4:
		ok = type == GUARD_ETH_P_IP && k->proto == GUARD_IPPROTO_TCP;
		break;
	case RING_VNET_GSO_TCPV6:
		ok = type == GUARD_ETH_P_IPV6 && k->proto == GUARD_IPPROTO_TCP;
		break;
	case RING_VNET_GSO_UDP_L4:
		ok = k->proto == GUARD_IPPROTO_UDP &&
		     !(v->gso_type & RING_VNET_GSO_ECN);
		break;
	default:	/* ECN alone, UFO, anything ring.c would not pass */
		ok = 0;
	}
	if (!ok || !v->gso_size)
		return GUARD_DROP_GSO;
	thl = 8;
	if (k->proto == GUARD_IPPROTO_TCP) {
		/* data offset: in the copy, inside TCP's least 20 bytes */
		thl = (k->hdr[k->l4 + 12] >> 4) * 4u;
		if (thl < 20 ||
		    v->gso_size + (thl - 20) < GUARD_TCP_MIN_SND_MSS)
			return GUARD_DROP_GSO;
	}
	hl = k->l4 + thl;
	if (hl > k->end || v->hdr_len < hl)
		return GUARD_DROP_GSO;
	pay = rec->frame_len - hl;
	if (k->proto == GUARD_IPPROTO_UDP &&
	    pay > (uint64_t)v->gso_size * GUARD_UDP_MAX_SEGMENTS)
		return GUARD_DROP_GSO;
	if ((uint64_t)hl - RING_ETH_HLEN + v->gso_size > mtu)
		return GUARD_DROP_GSO;
	gf->hdr_len = hl;
	gf->segs = guard_gso_segs(rec->frame_len, hl, v->gso_size, &gf->bytes);
	return GUARD_OK;
}

/**
 * guard_l2() - the L2 checks: source MAC, VLAN tag, MTU
 * @port:	the sending port
 * @rec:	the frame's private copies
 * @mtu:	largest L3 size of a non-GSO frame
 *
 * Return: GUARD_OK or a drop verdict
 */
static enum guard_verdict guard_l2(const struct guard_port *port,
				   const struct ring_rec *rec, uint32_t mtu)
{
	uint16_t type;

	if (memcmp(rec->l2 + 6, port->mac, 6))
		return GUARD_DROP_SPOOF;
	type = (uint16_t)(rec->l2[12] << 8 | rec->l2[13]);
	if (type == GUARD_ETH_P_8021Q || type == GUARD_ETH_P_8021AD)
		return GUARD_DROP_VLAN;
	if (rec->frame_len > (uint64_t)mtu + RING_ETH_HLEN &&
	    rec->vnet.gso_type == RING_VNET_GSO_NONE)
		return GUARD_DROP_MTU;
	return GUARD_OK;
}

/**
 * guard_link_ctl() - the link-layer control frames (guard.h has the list)
 * @port:	the sending port
 * @rec:	the frame's private copies
 *
 * Return: GUARD_OK or a drop verdict
 */
static enum guard_verdict guard_link_ctl(const struct guard_port *port,
					 const struct ring_rec *rec)
{
	const uint8_t *d = rec->l2;
	unsigned int type = guard_be16(rec->l2 + 12);

	if (d[0] & 1) {
		if (!memcmp(d, "\x01\x80\xc2\x00\x00", 5) && d[5] < 0x10)
			return GUARD_DROP_BRIDGE_GROUP;
		if (!memcmp(d, "\x01\x00\x0c\xcc\xcc", 5) &&
		    (d[5] == 0xcc || d[5] == 0xcd))
			return GUARD_DROP_CISCO_GROUP;
	}
	if (type == GUARD_ETH_P_MAC_CTL || type == GUARD_ETH_P_SLOW)
		return GUARD_DROP_MAC_CONTROL;
	if (type == GUARD_ETH_P_EAPOL)
		return GUARD_DROP_EAPOL;
	if (type < GUARD_ETH_P_802_3_MIN && !(port->flags & GUARD_F_ALLOW_LLC))
		return GUARD_DROP_LLC;
	return GUARD_OK;
}

/**
 * guard_dest() - the destination class of a frame that passed every check
 * @port:	the sending port
 * @rec:	the frame's private copies
 *
 * Return: GUARD_PASS_GROUP, GUARD_DROP_LOOP or GUARD_PASS_UNICAST
 */
static enum guard_verdict guard_dest(const struct guard_port *port,
				     const struct ring_rec *rec)
{
	if (rec->l2[0] & 1)
		return GUARD_PASS_GROUP;
	if (!memcmp(rec->l2, port->mac, 6))
		return GUARD_DROP_LOOP;
	return GUARD_PASS_UNICAST;
}

/**
 * guard_check_frame() - the whole verdict on one frame a partition sent
 * @port:	the sending port: its MAC, address sets and flags
 * @rec:	the frame as ring_peek() gave it; only @rec->vnet, @rec->l2
 *		and @rec->frame_len are read, never @rec->frame (rule 1)
 * @hdr:	private copy of the frame's first bytes: hdr_len =
 *		min(frame_len, GUARD_HDR_COPY); the guard takes the Ethernet
 *		header from @rec->l2 and reads @hdr from byte 14 on (rule 2)
 * @hdr_len:	bytes in @hdr; bytes past it are never read (a shorter copy
 *		hides headers: they are dropped as hidden)
 * @mtu:	largest L3 size of a non-GSO frame (frame length - 14), and
 *		of each segment of a GSO frame
 * @gf:		what the guard found, out (filled on every verdict; may be
 *		NULL): the L4 header, a GSO frame's headers and segments, and
 *		with GUARD_DROP_HIDDEN for a message the guard reads whole
 *		(DHCP) that runs past @hdr_len, @gf->want, the copy it needs
 *		(at most the frame's length; the caller may copy that much, up
 *		to GUARD_HDR_COPY_MAX, and ask again: rule 2)
 *
 * Checks in this order, the first that fails decides (guard.h, rule 3):
 * the L2 checks (guard_l2()), the link-layer control frames
 * (guard_link_ctl()), the L3 identity guard by EtherType (guard.h has the
 * list), the vnet header's requests (guard_vnet()), then the destination
 * class.
 *
 * The bytes checked must be the bytes that leave: the caller sends
 * @rec->l2 and @hdr[14..hdr_len) from its private memory, and only the rest
 * of the frame from ring memory; with a GSO frame it sends @gf->hdr_len as
 * the vnet header's hdr_len.
 *
 * Return: an enum guard_verdict
 */
enum guard_verdict guard_check_frame(const struct guard_port *port,
				     const struct ring_rec *rec,
				     const uint8_t *hdr, uint32_t hdr_len,
				     uint32_t mtu, struct guard_frame *gf)
{
	struct guard_pkt k = {
		.port = port,
		.hdr = hdr,
		.limit = hdr ? (hdr_len < rec->frame_len ? hdr_len
							 : rec->frame_len) : 0,
		.end = rec->frame_len,
		.gso = rec->vnet.gso_type != RING_VNET_GSO_NONE,
	};
	struct guard_frame none;
	enum guard_verdict v;

	if (!gf)
		gf = &none;
	*gf = (struct guard_frame){ .segs = 1, .bytes = rec->frame_len };
	v = guard_l2(port, rec, mtu);
	if (v)
		return v;
	v = guard_link_ctl(port, rec);
	if (v)
		return v;
	switch (guard_be16(rec->l2 + 12)) {
	case GUARD_ETH_P_IP:
		v = guard_ipv4(&k, rec->frame_len);
		break;
	case GUARD_ETH_P_ARP:
		v = guard_arp(&k);
		break;
	case GUARD_ETH_P_IPV6:
		v = guard_ipv6(&k, rec->frame_len);
		break;
	default:
		v = GUARD_OK;
	}
	if (v) {
		if (v == GUARD_DROP_HIDDEN)
			gf->want = k.want;
		return v;
	}
	gf->l4_off = k.l4;
	gf->l4_proto = k.l4 ? k.proto : 0;
	v = guard_vnet(&k, rec, mtu, gf);
	return v ? v : guard_dest(port, rec);
}

/* Group scope ---------------------------------------------------------------- */

/**
 * guard_group_scope() - who needs a broadcast or multicast frame
 * @eth:	its Ethernet header, 14 bytes (untagged: the type is the L3 one)
 * @l3:		its L3 header's first bytes
 * @l3_len:	bytes readable at @l3 (fewer than a header: GUARD_SCOPE_ALL)
 * @sc:		the answer, out
 *
 * For the switch's floods, from a partition (@l3 is the private copy the
 * guard checked, so this runs after guard_check_frame() passed it) or from
 * the wire (@l3 in the uplink's RX ring, read within @l3_len). Reads are
 * bounded by @l3_len and GUARD_EXT_MAX extension headers; anything it
 * cannot tell is GUARD_SCOPE_ALL: the frame goes where it always went.
 */
void guard_group_scope(const uint8_t *eth, const uint8_t *l3, uint32_t l3_len,
		       struct guard_scope *sc)
{
	unsigned int type = guard_be16(eth + 12), nh;
	uint32_t off;

	sc->kind = GUARD_SCOPE_ALL;
	if (eth[0] == 0x33 && eth[1] == 0x33 && eth[2] == 0xff) {
		sc->kind = GUARD_SCOPE_SOLICITED;
		memcpy(sc->key, eth + 3, 3);
		sc->key[3] = 0;
		return;
	}
	if (type == GUARD_ETH_P_ARP) {
		/* Ethernet/IPv4 request, not gratuitous (target = sender) */
		if (l3_len >= 28 && guard_be16(l3) == 1 &&
		    guard_be16(l3 + 2) == GUARD_ETH_P_IP && l3[4] == 6 &&
		    l3[5] == 4 && guard_be16(l3 + 6) == 1 &&
		    memcmp(l3 + 14, l3 + 24, 4)) {
			sc->kind = GUARD_SCOPE_ARP;
			memcpy(sc->key, l3 + 24, 4);
		}
		return;
	}
	if (type == GUARD_ETH_P_IP) {
		if (l3_len >= 20 && l3[0] >> 4 == 4 &&
		    l3[9] == GUARD_IPPROTO_IGMP)
			sc->kind = GUARD_SCOPE_ROUTERS;
		return;
	}
	if (type != GUARD_ETH_P_IPV6 || l3_len < 40 || l3[0] >> 4 != 6)
		return;
	nh = l3[6];
	off = 40;
	for (unsigned int n = 0; nh == GUARD_IPPROTO_HOPOPTS ||
	     nh == GUARD_IPPROTO_DSTOPTS; n++) {	/* MLD: hop-by-hop */
		if (n == GUARD_EXT_MAX || (uint64_t)off + 2 > l3_len)
			return;
		nh = l3[off];
		off += (l3[off + 1] + 1u) * 8u;
	}
	if (nh != GUARD_IPPROTO_ICMPV6 || (uint64_t)off + 1 > l3_len)
		return;
	switch (l3[off]) {
	case GUARD_ICMP6_RS:
	case GUARD_ICMP6_MLD_REPORT:
	case GUARD_ICMP6_MLD_DONE:
	case GUARD_ICMP6_MLD2_REPORT:
		sc->kind = GUARD_SCOPE_ROUTERS;
	}
}

/**
 * guard_port_wants() - does a port need a group frame of scope @sc?
 * @port:	the port
 * @sc:		the frame's scope (guard_group_scope())
 *
 * A port may own what its set says, and anything if GUARD_F_L3_ANY; an
 * IPv6 prefix shorter than /104 may hold an address of any solicited-node
 * group. When in doubt: yes.
 *
 * Return: 1 or 0
 */
int guard_port_wants(const struct guard_port *port,
		     const struct guard_scope *sc)
{
	unsigned int n;

	switch (sc->kind) {
	case GUARD_SCOPE_ROUTERS:
		return !!(port->flags & GUARD_F_TRUSTED_ROUTER);
	case GUARD_SCOPE_ARP:
		return (port->flags & GUARD_F_L3_ANY) || guard_has4(port, sc->key);
	case GUARD_SCOPE_SOLICITED:
		if (port->flags & GUARD_F_L3_ANY)
			return 1;
		n = port->n_ip6 < GUARD_ADDR_MAX ? port->n_ip6 : GUARD_ADDR_MAX;
		for (unsigned int i = 0; i < n; i++) {
			const struct guard_prefix6 *p = &port->ip6[i];

			if (p->len < 128 || !memcmp(p->addr + 13, sc->key, 3))
				return 1;
		}
		return 0;
	default:
		return 1;
	}
}
