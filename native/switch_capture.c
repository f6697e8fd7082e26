// SPDX-License-Identifier: MIT
/* switch_capture.c - capture: mirror a port's frames into a caller's ring
 *
 * sw_capture_add() and sw_capture_del() (prepared in the caller's thread,
 * entered through the command queue, switch_ctl.c); sw_cap_copy(), the
 * copy itself, out of line: the hot path calls sw_tap() (switch_int.h),
 * one predictable branch while a port has no capture. The Capture
 * paragraph of the Theory of operation atop switch.c says how.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "coalesce.h"
#include "switch_int.h"

/**
 * sw_cap_find() - the capture with id @id
 * @sw:		switch
 * @id:		capture id
 * @idx:	its index in @sw->caps, out (may be NULL)
 *
 * Return: the capture, or NULL
 */
static struct sw_cap *sw_cap_find(const struct sw *sw, uint32_t id,
				  unsigned int *idx)
{
	for (unsigned int i = 0; i < sw->ncaps; i++) {
		if (sw->caps[i]->id == id) {
			if (idx)
				*idx = i;
			return sw->caps[i];
		}
	}
	return NULL;
}

/**
 * sw_cap_copy() - copy one frame of a port into the captures that want it
 * @p:		port, with captures
 * @dir:	SW_CAP_RX or SW_CAP_TX
 * @drop:	enum sw_drop, SW_DROP_NONE if forwarded
 * @head:	the frame's first bytes (private memory)
 * @head_len:	their number
 * @tail:	the rest of the frame
 * @tail_len:	its length
 *
 * Kept out of line: only a port with captures comes here (sw_tap()).
 * A capture's filter runs first: a frame it refuses is counted, not
 * copied, and one it takes is kept up to the length it returns.
 * A capture ring without room loses the copy (counted); nothing waits.
 */
__attribute__((noinline, cold)) void
sw_cap_copy(struct sw_port *p, unsigned int dir, unsigned int drop,
	    const uint8_t *head, uint32_t head_len, const uint8_t *tail,
	    uint32_t tail_len)
{
	uint32_t len = head_len + tail_len;
	struct sw_cap_hdr ch = { .orig_len = len, .dir = (uint16_t)dir,
				 .drop = (uint16_t)drop };
	struct timespec ts = { 0 };
	int timed = 0;

	for (unsigned int i = 0; i < p->ncaps; i++) {
		struct sw_cap *c = p->caps[i];
		uint32_t cap, h, plen;
		uint8_t *dst;

		if (!(c->flags & dir) ||
		    !(c->flags & SW_CAP_DROPS) != (drop == SW_DROP_NONE))
			continue;
		cap = len < c->snaplen ? len : c->snaplen;
		if (c->filter) {
			uint32_t keep = cbpf_run(c->filter, head, head_len,
						 tail, tail_len);

			if (!keep) {
				c->st.filtered++;
				continue;
			}
			if (cap > keep)
				cap = keep;
		}
		if (cap > RING_FRAME_MAX - sizeof(ch))	/* a 64 KiB GSO frame */
			cap = RING_FRAME_MAX - (uint32_t)sizeof(ch);
		plen = RING_VNET_HDR_LEN + (uint32_t)sizeof(ch) + cap;
		if (ring_reserve(c->ring, plen, &dst) < 0) {
			c->st.lost++;
			continue;
		}
		if (!timed) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ch.time_ns = (uint64_t)ts.tv_sec * 1000000000ull +
				     (uint64_t)ts.tv_nsec;
			timed = 1;
		}
		memset(dst, 0, RING_VNET_HDR_LEN);
		dst += RING_VNET_HDR_LEN;
		memcpy(dst, &ch, sizeof(ch));
		dst += sizeof(ch);
		h = cap < head_len ? cap : head_len;
		memcpy(dst, head, h);
		memcpy(dst + h, tail, cap - h);
		ring_commit(c->ring, plen);
		c->st.frames++;
		c->st.bytes += len;
		c->dirty = 1;
	}
}

/**
 * sw_cmd_cap_add() - SW_CMD_CAP_ADD: attach a prepared capture to its port
 * @sw:		switch
 * @c:		command: @c->cap (its id is given here)
 *
 * Return: 0, -ENOENT (no port @c->cap->port_id) or -ENOSPC
 */
int sw_cmd_cap_add(struct sw *sw, struct sw_cmd *c)
{
	struct sw_port *p = sw_find(sw, c->cap->port_id, NULL);

	if (!p)
		return -ENOENT;
	if (p->ncaps == SW_PORT_CAPTURES_MAX || sw->ncaps == SW_CAPTURES_MAX)
		return -ENOSPC;
	do	/* unique among live captures, never 0 */
		c->cap->id = ++sw->cap_id;
	while (!c->cap->id || sw_cap_find(sw, c->cap->id, NULL));
	p->caps[p->ncaps++] = c->cap;
	sw->caps[sw->ncaps++] = c->cap;
	return 0;
}

/**
 * sw_cmd_cap_del() - SW_CMD_CAP_DEL: detach capture @c->port_id
 * @sw:		switch
 * @c:		command: @c->port_id, the capture's id; out, @c->cap (the
 *		caller frees it) and its last counters in @c->cap_st (may be
 *		NULL)
 *
 * Return: 0 or -ENOENT
 */
int sw_cmd_cap_del(struct sw *sw, struct sw_cmd *c)
{
	unsigned int idx;
	struct sw_cap *cap = sw_cap_find(sw, c->port_id, &idx);
	struct sw_port *p;

	if (!cap)
		return -ENOENT;
	p = sw_find(sw, cap->port_id, NULL);
	for (unsigned int i = 0; p && i < p->ncaps; i++) {
		if (p->caps[i] == cap) {
			p->caps[i] = p->caps[--p->ncaps];
			p->caps[p->ncaps] = NULL;
			break;
		}
	}
	if (cap->dirty)
		ring_flush(cap->ring);
	if (c->cap_st)
		*c->cap_st = cap->st;
	sw->caps[idx] = sw->caps[--sw->ncaps];
	sw->caps[sw->ncaps] = NULL;
	c->cap = cap;
	return 0;
}

/**
 * sw_cap_free() - unmap a capture's ring and close its descriptors
 * @c:		capture, in no table; may be NULL
 */
void sw_cap_free(struct sw_cap *c)
{
	if (!c)
		return;
	ring_detach(c->ring);
	for (int i = 0; i < 2; i++)
		if (c->fds[i] >= 0)
			close(c->fds[i]);
	free(c->filter);
	free(c);
}

/**
 * sw_capture_add() - mirror a port's frames into a capture ring
 * @sw:		switch
 * @port_id:	the port
 * @flags:	SW_CAP_RX and/or SW_CAP_TX (at least one); SW_CAP_DROPS for
 *		its dropped frames instead of its forwarded ones
 * @snaplen:	most bytes of each frame to keep, >= RING_ETH_HLEN
 * @filter:	a classic BPF program (cbpf.h) the frames must pass, copied
 *		and checked here (cbpf_check()); NULL for none
 * @filter_len:	its instructions (0 with no filter)
 * @ring:	the producer end of a ring (ring_create()): the switch maps it
 *		and dup()s its pipe ends; the caller may close its own
 * @ring_size:	its data size (0: the memfd's)
 * @cap_id:	the capture's id, out (for sw_capture_del())
 *
 * Records are struct sw_cap_hdr, then the frame's first bytes (switch.h).
 *
 * Return: 0, -EINVAL (flags, snaplen, descriptors, a filter that
 * cbpf_check() refuses), -ENOENT (no such
 * port), -ENOSPC (SW_PORT_CAPTURES_MAX on the port or SW_CAPTURES_MAX in
 * all), or -errno from ring_attach()
 */
int sw_capture_add(struct sw *sw, uint32_t port_id, uint32_t flags,
		   uint32_t snaplen, const struct cbpf_insn *filter,
		   uint32_t filter_len, const struct ring_end *ring,
		   uint64_t ring_size, uint32_t *cap_id)
{
	struct sw_cmd c = { .op = SW_CMD_CAP_ADD };
	struct sw_cap *cap;
	int rc;

	if (!sw || !ring || !cap_id || snaplen < RING_ETH_HLEN ||
	    !(flags & (SW_CAP_RX | SW_CAP_TX)) ||
	    (flags & ~(SW_CAP_RX | SW_CAP_TX | SW_CAP_DROPS)) ||
	    (filter && cbpf_check(filter, filter_len, NULL)))
		return -EINVAL;
	cap = calloc(1, sizeof(*cap));
	if (!cap)
		return -ENOMEM;
	cap->fds[0] = cap->fds[1] = -1;
	if (filter) {
		cap->filter = malloc(filter_len * sizeof(*filter));
		if (!cap->filter) {
			rc = -ENOMEM;
			goto fail;
		}
		memcpy(cap->filter, filter, filter_len * sizeof(*filter));
	}
	cap->port_id = port_id;
	cap->flags = flags;
	cap->snaplen = snaplen;
	rc = sw_ring_take(&cap->ring, cap->fds, ring, RING_PRODUCER, ring_size);
	if (rc)
		goto fail;
	c.cap = cap;
	rc = sw_exec(sw, &c);
	if (rc)
		goto fail;
	*cap_id = cap->id;
	return 0;
fail:
	sw_cap_free(cap);
	return rc;
}

/**
 * sw_capture_del() - stop a capture; returns once the switch no longer
 * writes to its ring (flushed: every record it wrote is published)
 * @sw:		switch
 * @cap_id:	its id
 * @final:	its last counters, out (may be NULL)
 *
 * Return: 0 or -ENOENT
 */
int sw_capture_del(struct sw *sw, uint32_t cap_id,
		   struct sw_capture_stats *final)
{
	struct sw_cmd c = { .op = SW_CMD_CAP_DEL, .port_id = cap_id,
			    .cap_st = final };
	int rc;

	if (!sw)
		return -EINVAL;
	rc = sw_exec(sw, &c);
	if (rc)
		return rc;
	sw_cap_free(c.cap);
	return 0;
}
