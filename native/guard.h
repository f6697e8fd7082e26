/* SPDX-License-Identifier: MIT */
/* guard.h - what a partition may send: the per-frame checks of A2H frames
 *
 * The switch (switch.c) asks the guard about every frame it takes from a
 * partition's A2H ring, and acts on the verdict: forward it, or drop it and
 * count it under the verdict's counter. The guard is a pure function, so it
 * can be fuzzed alone (native/fuzz/fuzz_guard.c).
 *
 * One entry point, guard_check_frame(): the L2 checks (source MAC, VLAN
 * tag, MTU), then the link-layer control frames, then the L3 identity
 * guard on a private copy of the frame's first bytes, then what the vnet
 * header asks for (checksum, segmentation), then the destination class.
 * What it parsed comes back in a struct guard_frame: the headers every
 * segment repeats and the segments the frame becomes, so the switch
 * charges and counts what leaves, not the records it took.
 *
 * Rules of the guard:
 *  1. it decides only on private memory: the copies in struct ring_rec
 *     (@vnet, @l2, @frame_len) that ring_peek() validated, never on
 *     rec->frame, which the partition can still rewrite;
 *  2. a check that needs bytes past the Ethernet header (the L3 identity
 *     guard: IPv4, ARP, IPv6, ND source checks) gets them from one bounded
 *     copy the caller makes into private memory (GUARD_HDR_COPY bytes,
 *     fewer if the frame is shorter), and checks only that copy. A message
 *     the guard reads whole (a DHCP or DHCPv6 message: its options) may
 *     run past that copy: the guard then says drop_hidden and how long a
 *     copy it needs (@want); the caller may make that longer copy, at most
 *     GUARD_HDR_COPY_MAX bytes, into private memory, ask again, and must
 *     then send those bytes from that copy. A copy shorter than the guard
 *     needs never lets more through;
 *  3. the checks run in a fixed order and the first that fails gives the
 *     verdict: source MAC, VLAN tag, MTU, the link-layer control frames
 *     (802.1D reserved group, Cisco group, MAC control, EAPOL, LLC), the
 *     L3 identity guard, the vnet header's checksum request, its
 *     segmentation request, then the destination class;
 *  4. it never fails, allocates or blocks: every input gives one of the
 *     verdicts below, after a bounded number of steps (at most
 *     GUARD_EXT_MAX extension headers, ND and DHCP options only inside the
 *     copy).
 *
 * The L3 identity guard, in guard_check_frame(), each protocol's checks in
 * the order written (the first that fails decides; guard.c has the details):
 *  - IPv4 (0x0800): a sane header (version 4, IHL >= 5, total length
 *    covering the header and inside the frame); source in the port's IPv4
 *    set or 0.0.0.0; a non-first fragment passes now (0.0.0.0: spoof); a
 *    packet at offset 0 must hold its L4 header (TCP 20, UDP 8, ICMP 8
 *    bytes; others 0): a first fragment that does not is a tiny fragment;
 *    0.0.0.0 only in a DHCP client message (UDP 68 -> 67, BOOTP op
 *    BOOTREQUEST, not a fragment); then the DHCP guard (below) on UDP;
 *    ICMP redirects (type 5) only from a trusted router;
 *  - ARP (0x0806): Ethernet/IPv4 (htype 1, ptype 0x0800, hlen 6, plen 4,
 *    op request or reply), sender hardware address = the port's MAC, sender
 *    IP in the set or 0.0.0.0 (a probe);
 *  - IPv6 (0x86dd): a sane header (version 6, payload inside the frame);
 *    source in the port's IPv6 set (which the Python side fills with the
 *    EUI-64 link-local address too) or ::; extension headers (hop-by-hop
 *    first only, routing, one fragment header, destination options, AH)
 *    are walked, at most GUARD_EXT_MAX of them and each inside the copy,
 *    else the frame hides its upper layer and is dropped; a non-first
 *    fragment passes now (::: spoof), a first fragment must hold the
 *    upper-layer header (sizes as for IPv4); :: only in a DAD neighbour
 *    solicitation (135) or an MLD report (131, 143); then the DHCP guard
 *    (below) on UDP; ICMPv6 router advertisements (134) and redirects
 *    (137) only from a trusted router; neighbour discovery (133, 135, 136):
 *    not in a fragment, a neighbour advertisement's target and a DAD
 *    solicitation's target in the set, then the options walked inside the
 *    copy (length 0 or past the message: malformed; past the copy: hidden),
 *    any source or target link-layer address option = the port's MAC (and
 *    none of the source kind in a DAD solicitation);
 *  - other EtherTypes carry no address the guard knows and pass.
 *
 * What the vnet header may ask for (rec->vnet, the private copy), in
 * guard_check_frame() after the L3 identity guard passed the frame. The
 * header is an instruction to whoever finishes the frame (the kernel's
 * software fallback on the uplink or in a partition, or a NIC): it writes a
 * checksum into 2 bytes at csum_start + csum_offset, and cuts a GSO frame
 * into gso_size pieces, each led by a copy of the headers. So:
 *  - VIRTIO_NET_HDR_F_NEEDS_CSUM: only into a TCP or UDP packet that is
 *    not a fragment, csum_start = the L4 header the guard parsed,
 *    csum_offset = its checksum field (TCP 16, UDP 6); else
 *    GUARD_DROP_CSUM_OFFSET (drop_csum_offset). Nothing else asks for it:
 *    ICMP, ICMPv6, UDP-Lite and SCTP checksums are computed by the sending
 *    kernel itself, a fragment never carries a partial checksum (the
 *    kernel completes it before it fragments), and anywhere else the 2
 *    bytes would land on bytes the guard checked (an ARP sender address,
 *    an IP source, an IPv6 next header: issue 20);
 *  - a GSO type: the packet it names (TCPV4: IPv4 + TCP, TCPV6: IPv6 + TCP,
 *    UDP_L4: UDP, ECN with TCP only), with NEEDS_CSUM (the kernel then
 *    takes csum_start as the L4 header, the one the guard parsed; a real
 *    TAP always sets it), a TCP header of at least 20 bytes inside the
 *    packet, hdr_len at least the headers (Ethernet, L3, L4 with its
 *    options: a TAP writes skb_headlen(), which may be more, never less),
 *    gso_size from the least segment the kernel's own senders make
 *    (TCP: gso_size + TCP options >= GUARD_TCP_MIN_SND_MSS; UDP: at most
 *    GUARD_UDP_MAX_SEGMENTS segments) up to what fits the MTU (headers
 *    past Ethernet + gso_size <= @mtu); else GUARD_DROP_GSO (drop_gso).
 * These hold whatever the flags: GUARD_F_L3_ANY does not turn them off.
 *
 * The DHCP guard, on UDP over IPv4 (DHCP) and IPv6 (DHCPv6):
 *  - a server's or relay agent's message: from the server port (67, 547),
 *    to the client port (68, 546), or to the server port but not a client
 *    message (BOOTP op BOOTREPLY, a DHCP message type other than DISCOVER,
 *    REQUEST, DECLINE, RELEASE, INFORM; a DHCPv6 type other than SOLICIT,
 *    REQUEST, CONFIRM, RENEW, REBIND, RELEASE, DECLINE,
 *    INFORMATION-REQUEST: ADVERTISE, REPLY, RECONFIGURE, RELAY-FORW,
 *    RELAY-REPL, leasequery, anything unknown): only from a trusted router
 *    (drop_dhcp_server);
 *  - a client message (to port 67, 547) is read whole, inside one
 *    private copy (rule 2): not in a first fragment (drop_fragment), not
 *    GSO (its segments would be messages the guard never saw: drop_gso),
 *    the UDP length inside the packet, a BOOTP header of 236 bytes, op
 *    BOOTREQUEST, options inside the message, option overload followed
 *    into the file and sname fields, no option the guard reads twice
 *    (drop_malformed); then, whatever the flags, the port's own MAC:
 *    DHCP htype 1, hlen 6, chaddr = the port's MAC; a client identifier
 *    (DHCP option 61 of type 1, or 255 with a DUID; DHCPv6 OPTION_CLIENTID)
 *    that names a link-layer address (type 1, DUID-LLT, DUID-LL) names the
 *    port's MAC over Ethernet (other DUIDs, DUID-EN and DUID-UUID, name
 *    none and pass); then, but under GUARD_F_L3_ANY, its own addresses: a
 *    RELEASE's ciaddr and a DECLINE's requested address (option 50) in the
 *    port's IPv4 set, every IA address (IA_NA, IA_TA) of a DHCPv6 RELEASE or
 *    DECLINE in its IPv6 set (drop_dhcp_spoof).
 *
 * Link-layer control frames, in this order, each under its own verdict:
 *  - the IEEE 802.1D reserved group 01:80:c2:00:00:00 to
 *    01:80:c2:00:00:0f (STP, pause, LACP, 802.1X, LLDP);
 *  - the Cisco group 01:00:0c:cc:cc:cc (CDP, VTP, DTP, UDLD, PAgP) and
 *    01:00:0c:cc:cc:cd (PVST+ BPDUs);
 *  - EtherType 0x8808 (MAC control: PAUSE, PFC) and 0x8809 (slow
 *    protocols: LACP, marker, OAM), to any destination (PAUSE may be
 *    unicast);
 *  - EtherType 0x888e (EAPOL, 802.1X) to any destination;
 *  are dropped whatever the flags: a partition must not speak to the LAN's
 *  bridges or authenticate the shared port, and a bridge must not forward
 *  them anyway;
 *  - an 802.3 length field instead of an EtherType (below 0x0600: LLC,
 *    SNAP, NetBIOS, IS-IS, old STP) only with GUARD_F_ALLOW_LLC.
 *
 * GUARD_F_L3_ANY turns off the address checks (IPv4, ARP and IPv6 source,
 * ND target, the addresses of a DHCP release or decline), not the MAC in
 * ARP, ND options and DHCP, nor the RA, redirect and DHCP server guard.
 * GUARD_F_TRUSTED_ROUTER turns off the RA, redirect and DHCP server guard,
 * not the checks of its own client messages. GUARD_F_ALLOW_LLC lets 802.3
 * length frames pass. No flag changes the other link-layer control drops,
 * and none ever turns a pass into a drop.
 */
#ifndef VNETSHARE_GUARD_H
#define VNETSHARE_GUARD_H

#include <stdint.h>

#include "ring.h"

/* cdef: begin */
/* Bytes of a frame's headers a caller copies for checks past L2 (rule 2). */
#define GUARD_HDR_COPY		128u

/* The longest copy the guard may ask for (rule 2): a DHCP message read
 * whole, in a standard Ethernet frame (clients send a few hundred bytes) */
#define GUARD_HDR_COPY_MAX	1514u

/* Prefixes per address family a port may send from. */
#define GUARD_ADDR_MAX		16u

/* IPv6 extension headers walked before the upper layer, at most (rule 4). */
#define GUARD_EXT_MAX		4u

/*
 * The least GSO segment: what the kernel's own senders may make, not less.
 * TCP: a segment's payload and options are at least tcp_min_snd_mss, whose
 * floor is TCP_MIN_SND_MSS (48, include/net/tcp.h, since CVE-2019-11479);
 * with 40 bytes of options that leaves 8 bytes of payload (the kernel's
 * TCP_MIN_GSO_SIZE). UDP: udp_send_skb() and virtio_net_hdr_to_skb() allow
 * UDP_MAX_SEGMENTS segments of any size (128 on Linux 6.18, 64 on older
 * kernels; probed in tests/netns/probes/test_probe_tap.py).
 */
#define GUARD_TCP_MIN_SND_MSS	48u
#define GUARD_UDP_MAX_SEGMENTS	128u

#define GUARD_ETH_P_8021Q	0x8100u
#define GUARD_ETH_P_8021AD	0x88a8u
#define GUARD_ETH_P_IP		0x0800u
#define GUARD_ETH_P_ARP		0x0806u
#define GUARD_ETH_P_IPV6	0x86ddu
#define GUARD_ETH_P_MAC_CTL	0x8808u	/* MAC control: PAUSE, PFC */
#define GUARD_ETH_P_SLOW	0x8809u	/* slow protocols: LACP, marker, OAM */
#define GUARD_ETH_P_EAPOL	0x888eu
#define GUARD_ETH_P_802_3_MIN	0x0600u	/* below: an 802.3 length, LLC follows */

/* struct guard_port flags */
#define GUARD_F_L3_ANY		0x1u	/* --allow-ip any: no address checks */
#define GUARD_F_TRUSTED_ROUTER	0x2u	/* --trusted-router: RA, redirect, DHCP server */
#define GUARD_F_ALLOW_LLC	0x4u	/* --allow-llc: 802.3 length (LLC) frames */

/**
 * enum guard_verdict - what to do with one A2H frame
 * @GUARD_PASS_UNICAST:	forward; unicast to someone else: the caller looks
 *			the destination up (another port, else the wire)
 * @GUARD_PASS_GROUP:	forward; broadcast or multicast destination: every
 *			other port and the wire
 * @GUARD_DROP_SPOOF:	source MAC is not the port's (drop_spoof)
 * @GUARD_DROP_VLAN:	802.1Q or 802.1ad tagged: a partition may not pick a
 *			VLAN (drop_vlan)
 * @GUARD_DROP_MTU:	not GSO and longer than MTU + Ethernet header
 *			(drop_mtu)
 * @GUARD_DROP_LOOP:	destination is the port's own MAC (drop_loop)
 * @GUARD_DROP_BRIDGE_GROUP: destination in 01:80:c2:00:00:00-0f, the IEEE
 *			802.1D reserved group (drop_bridge_group)
 * @GUARD_DROP_MALFORMED: an IPv4, ARP, IPv6, extension or ND header that
 *			breaks its format or runs past its packet
 *			(drop_malformed)
 * @GUARD_DROP_HIDDEN:	a header the guard must see lies past the private
 *			copy, or more than GUARD_EXT_MAX extension headers
 *			(drop_hidden)
 * @GUARD_DROP_FRAGMENT: a first fragment without its L4 header (tiny
 *			fragment), or neighbour discovery in a fragment
 *			(drop_fragment)
 * @GUARD_DROP_IP_SPOOF: IPv4 or IPv6 source not the port's (drop_ip_spoof)
 * @GUARD_DROP_ARP_SPOOF: ARP sender MAC or IP not the port's
 *			(drop_arp_spoof)
 * @GUARD_DROP_ND_SPOOF: neighbour discovery for another's address or MAC:
 *			NA or DAD NS target not the port's, a link-layer
 *			address option not the port's MAC (drop_nd_spoof)
 * @GUARD_DROP_RA:	ICMPv6 router advertisement, not a trusted router
 *			(drop_ra)
 * @GUARD_DROP_REDIRECT: ICMPv6 or ICMP redirect, not a trusted router
 *			(drop_redirect)
 * @GUARD_DROP_DHCP_SERVER: a DHCP or DHCPv6 message that is not a client's
 *			(from port 67 or 547, to port 68 or 546, a server's or
 *			relay agent's message type), not a trusted router
 *			(drop_dhcp_server)
 * @GUARD_DROP_DHCP_SPOOF: a DHCP or DHCPv6 client message for another
 *			client: a hardware address or DUID not the port's, a
 *			release or decline of an address not the port's
 *			(drop_dhcp_spoof)
 * @GUARD_DROP_CSUM_OFFSET: the vnet header asks for a checksum anywhere
 *			but the checksum field of the L4 header the guard
 *			parsed (drop_csum_offset)
 * @GUARD_DROP_GSO:	the vnet header asks for segmentation the packet
 *			does not match: a GSO type not its protocol, a
 *			segment size out of bounds, a header length not its
 *			headers' (drop_gso)
 * @GUARD_DROP_CISCO_GROUP: destination 01:00:0c:cc:cc:cc or :cd (CDP, VTP,
 *			DTP, PVST+ BPDUs) (drop_cisco_group)
 * @GUARD_DROP_MAC_CONTROL: EtherType 0x8808 (MAC control: PAUSE, PFC) or
 *			0x8809 (slow protocols: LACP, marker, OAM)
 *			(drop_mac_control)
 * @GUARD_DROP_EAPOL:	EtherType 0x888e, 802.1X authentication (drop_eapol)
 * @GUARD_DROP_LLC:	an 802.3 length field instead of an EtherType (below
 *			0x0600: LLC, SNAP, STP of old bridges) (drop_llc)
 * @GUARD__MAX:		number of verdicts
 *
 * A counter array indexed by this enum counts every drop; a new verdict is
 * one entry here and one name in guard.c, nothing else.
 */
enum guard_verdict {
	GUARD_PASS_UNICAST = 0,
	GUARD_PASS_GROUP,
	GUARD_DROP_SPOOF,
	GUARD_DROP_VLAN,
	GUARD_DROP_MTU,
	GUARD_DROP_LOOP,
	GUARD_DROP_BRIDGE_GROUP,
	GUARD_DROP_MALFORMED,
	GUARD_DROP_HIDDEN,
	GUARD_DROP_FRAGMENT,
	GUARD_DROP_IP_SPOOF,
	GUARD_DROP_ARP_SPOOF,
	GUARD_DROP_ND_SPOOF,
	GUARD_DROP_RA,
	GUARD_DROP_REDIRECT,
	GUARD_DROP_DHCP_SERVER,
	GUARD_DROP_DHCP_SPOOF,
	GUARD_DROP_CSUM_OFFSET,
	GUARD_DROP_GSO,
	GUARD_DROP_CISCO_GROUP,
	GUARD_DROP_MAC_CONTROL,
	GUARD_DROP_EAPOL,
	GUARD_DROP_LLC,
	GUARD__MAX
};

/**
 * struct guard_prefix4 - an IPv4 prefix a port may send from
 * @addr:	address, network byte order (bits past @len are ignored)
 * @len:	prefix length, 0 to 32 (32: one address; more counts as 32)
 */
struct guard_prefix4 {
	uint8_t addr[4];
	uint8_t len;
};

/**
 * struct guard_prefix6 - an IPv6 prefix a port may send from
 * @addr:	address, network byte order (bits past @len are ignored)
 * @len:	prefix length, 0 to 128 (128: one address; more counts as 128)
 */
struct guard_prefix6 {
	uint8_t addr[16];
	uint8_t len;
};

/**
 * struct guard_port - what the guard knows of a port: its identity
 * @mac:	the partition's MAC: the only source it may send from
 * @flags:	GUARD_F_L3_ANY, GUARD_F_TRUSTED_ROUTER, GUARD_F_ALLOW_LLC;
 *		other bits ignored
 * @n_ip4:	entries of @ip4 in use (more than GUARD_ADDR_MAX counts as
 *		GUARD_ADDR_MAX)
 * @n_ip6:	entries of @ip6 in use (likewise)
 * @ip4:	the IPv4 prefixes it may send from (its addresses as /32)
 * @ip6:	the IPv6 prefixes it may send from: its addresses as /128, its
 *		EUI-64 link-local address among them (vnetshare/dataplane/guard.py)
 *
 * A zeroed port (no address, no flag) passes no IPv4, ARP or IPv6 frame but
 * MLD reports from ::, ARP probes and DHCP client messages from 0.0.0.0.
 */
struct guard_port {
	uint8_t mac[6];
	uint8_t n_ip4;
	uint8_t n_ip6;
	uint32_t flags;
	struct guard_prefix4 ip4[GUARD_ADDR_MAX];
	struct guard_prefix6 ip6[GUARD_ADDR_MAX];
};

/**
 * struct guard_frame - what the guard found in a frame: what the switch
 *			sends on with it and charges for it
 * @l4_off:	offset of the L4 header in the frame the guard parsed; 0 if
 *		it reached none (ARP, another EtherType, a fragment but the
 *		first, or a drop before the L3 guard was done)
 * @l4_proto:	its protocol (IP protocol, IPv6 next header), if @l4_off
 * @hdr_len:	a GSO frame's headers, which every segment repeats:
 *		Ethernet, L3 with its options or extension headers, L4 with
 *		its options (TCP: data offset * 4; UDP: 8); 0 if not GSO. The
 *		switch sends this as the vnet header's hdr_len, exact, in
 *		place of the partition's hint
 * @segs:	frames it becomes on the wire: 1, or a GSO frame's segments,
 *		ceil((frame length - @hdr_len) / gso_size)
 * @bytes:	their bytes: frame length + (@segs - 1) * @hdr_len
 * @want:	0, or with GUARD_DROP_HIDDEN for a message the guard reads
 *		whole (DHCP) that runs past the copy, the copy it needs: the
 *		end of its UDP datagram (rule 2)
 *
 * Filled by guard_check_frame() on every verdict; on a drop @segs is 1
 * and @bytes the frame's length. Storm control, the rate limits and the
 * counters charge a frame @segs packets and @bytes bytes.
 */
struct guard_frame {
	uint32_t l4_off;
	uint32_t l4_proto;
	uint32_t hdr_len;
	uint32_t segs;
	uint32_t want;
	uint64_t bytes;
};

/**
 * enum guard_scope_kind - who needs a group frame (guard_group_scope())
 * @GUARD_SCOPE_ALL:	every port of the VLAN and the wire: broadcast and
 *			multicast in general
 * @GUARD_SCOPE_ROUTERS: the wire and trusted-router ports only: router
 *			solicitations, MLD reports and dones, IGMP: what only
 *			routers and multicast queriers act on (a Linux bridge
 *			with snooping sends reports only to its router ports)
 * @GUARD_SCOPE_ARP:	the wire and the ports that own @key (IPv4, 4 bytes):
 *			an ARP request for that address, not a gratuitous one
 * @GUARD_SCOPE_SOLICITED: the wire and the ports with an address in the
 *			IPv6 solicited-node group whose low 24 bits are @key[0..2]
 *			(a port with an IPv6 prefix, not only /128s, may)
 *			(destination 33:33:ff:xx:xx:xx: neighbour solicitations,
 *			DAD probes)
 */
enum guard_scope_kind {
	GUARD_SCOPE_ALL = 0,
	GUARD_SCOPE_ROUTERS,
	GUARD_SCOPE_ARP,
	GUARD_SCOPE_SOLICITED,
};

/**
 * struct guard_scope - a group frame's audience
 * @kind:	enum guard_scope_kind
 * @key:	the address it concerns (GUARD_SCOPE_ARP, _SOLICITED)
 */
struct guard_scope {
	int kind;
	uint8_t key[4];
};

void guard_group_scope(const uint8_t *eth, const uint8_t *l3, uint32_t l3_len,
		       struct guard_scope *sc);
int guard_port_wants(const struct guard_port *port,
		     const struct guard_scope *sc);

enum guard_verdict guard_check_frame(const struct guard_port *port,
				     const struct ring_rec *rec,
				     const uint8_t *hdr, uint32_t hdr_len,
				     uint32_t mtu, struct guard_frame *gf);
const char *guard_verdict_name(unsigned int verdict);
uint32_t guard_gso_segs(uint32_t frame_len, uint32_t hdr_len,
			uint32_t gso_size, uint64_t *bytes);
/* cdef: end */

#endif /* VNETSHARE_GUARD_H */
