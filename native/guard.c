// SPDX-License-Identifier: MIT
/* guard.c - what a partition may send: the per-frame checks of A2H frames
 *
 * The rules are at the top of guard.h. The switch calls guard_check_tx()
 * once per frame it peeked from an A2H ring and counts a drop under the
 * counter the verdict names.
 */
#include <string.h>

#include "guard.h"

static const char *const guard_verdict_names[GUARD__MAX] = {
	[GUARD_PASS_UNICAST]	= "pass_unicast",
	[GUARD_PASS_GROUP]	= "pass_group",
	[GUARD_DROP_SPOOF]	= "drop_spoof",
	[GUARD_DROP_VLAN]	= "drop_vlan",
	[GUARD_DROP_MTU]	= "drop_mtu",
	[GUARD_DROP_LOOP]	= "drop_loop",
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
 * guard_check_tx() - the verdict on one frame a partition sent
 * @port:	the sending port
 * @rec:	the frame as ring_peek() gave it; only the private copies
 *		@rec->vnet, @rec->l2 and @rec->frame_len are read, never
 *		@rec->frame (guard.h, rule 1)
 * @mtu:	largest L3 size of a non-GSO frame (frame length - 14)
 *
 * Checks in this order, the first that fails decides (guard.h, rule 3):
 * the source MAC must be the port's (anti-spoofing), the frame must not be
 * VLAN-tagged, a non-GSO frame must fit the MTU; then the destination is
 * classified: group address, the port's own MAC (a loop), or other unicast.
 *
 * Return: an enum guard_verdict
 */
enum guard_verdict guard_check_tx(const struct guard_port *port,
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
	if (rec->l2[0] & 1)
		return GUARD_PASS_GROUP;
	if (!memcmp(rec->l2, port->mac, 6))
		return GUARD_DROP_LOOP;
	return GUARD_PASS_UNICAST;
}
