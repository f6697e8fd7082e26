/* SPDX-License-Identifier: MIT */
/* guard.h - what a partition may send: the per-frame checks of A2H frames
 *
 * The switch (switch.c) asks guard_check_tx() about every frame it takes
 * from a partition's A2H ring, and acts on the verdict: forward it, or drop
 * it and count it under the verdict's counter. The guard is a pure
 * function, so it can be fuzzed alone (native/fuzz/fuzz_guard.c).
 *
 * Rules of the guard:
 *  1. it decides only on private memory: the copies in struct ring_rec
 *     (@vnet, @l2, @frame_len) that ring_peek() validated, never on
 *     rec->frame, which the partition can still rewrite;
 *  2. a check that needs bytes past the Ethernet header (the L3 identity
 *     guard: IPv4, ARP, IPv6, ND source checks) gets them from one bounded
 *     copy the caller makes into private memory (at most GUARD_HDR_COPY
 *     bytes, fewer if the frame is shorter), and checks only that copy;
 *  3. the checks run in a fixed order and the first that fails gives the
 *     verdict: source MAC, VLAN tag, MTU, then the destination class;
 *  4. it never fails, allocates or blocks: every input gives one of the
 *     verdicts below.
 */
#ifndef VNETSHARE_GUARD_H
#define VNETSHARE_GUARD_H

#include <stdint.h>

#include "ring.h"

/* Bytes of a frame's headers a caller copies for checks past L2 (rule 2). */
#define GUARD_HDR_COPY		128u

#define GUARD_ETH_P_8021Q	0x8100u
#define GUARD_ETH_P_8021AD	0x88a8u

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
 * @GUARD__MAX:		number of verdicts
 */
enum guard_verdict {
	GUARD_PASS_UNICAST = 0,
	GUARD_PASS_GROUP,
	GUARD_DROP_SPOOF,
	GUARD_DROP_VLAN,
	GUARD_DROP_MTU,
	GUARD_DROP_LOOP,
	GUARD__MAX
};

/**
 * struct guard_port - what the guard knows of a port
 * @mac:	the partition's MAC: the only source it may send from
 */
struct guard_port {
	uint8_t mac[6];
};

enum guard_verdict guard_check_tx(const struct guard_port *port,
				  const struct ring_rec *rec, uint32_t mtu);
const char *guard_verdict_name(unsigned int verdict);

#endif /* VNETSHARE_GUARD_H */
