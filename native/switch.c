// SPDX-License-Identifier: MIT
/* switch.c - the hosting daemon's data plane: partitions' rings <-> uplink
 *
 * DOC: Theory of operation
 *
 * The switch is the patent's I/O hosting interface. Each partition is a
 * port: its A2H ring (we consume) and H2A ring (we produce), and its MAC.
 * The uplink is an AF_PACKET socket on the NIC (uplink.c). One thread runs
 * sw_run(), which does rounds:
 *
 *   1. wire -> ports: up to @uplink_burst frames from the uplink's RX ring.
 *      The frame's VLAN (the NIC's stripped tag, TP_STATUS_VLAN_VALID, or
 *      an 802.1Q tag inline, which is taken out) picks the ports it may
 *      reach: those of that access VLAN, or the untagged ones (VLAN 0).
 *      Destination MAC of such a partition: one copy into its H2A ring
 *      (the 10-byte vnet header becomes the 12-byte one).
 *      Broadcast/multicast: a flood copy into each of them. Other unicast,
 *      a VLAN no port has, a port of another VLAN: dropped, counted.
 *      Before that, its source MAC is learned (sw_learn(), "Learning"
 *      below).
 *
 *   2. ports -> anywhere: the live ports (those kicked since they were
 *      armed, new ones, throttled ones; @live), round robin (the first
 *      port moves each round), each port at most @burst_frames frames /
 *      @burst_bytes bytes (rule 6):
 *        TX token buckets empty -> stop: the frames wait in the A2H ring,
 *                                 the port is throttled until they refill
 *        ring_peek()                         rules 1-4, in ring.c
 *        copy the frame's first min(len, GUARD_HDR_COPY) bytes to the
 *        private @hdr (its L2 header from the validated rec.l2)
 *        guard_check_frame(), in guard.c, on that copy only:
 *          source MAC, VLAN tag, MTU, link-layer control, L3 identity,
 *          the vnet header's checksum and GSO requests, a loop
 *          -> drop, counted under the verdict
 *          a DHCP message past the copy (drop_hidden, and the guard wants
 *          a longer copy, rare) -> the first @want bytes copied into the
 *          private @hdr_long, asked again on that (sw_guard_long()); from
 *          then on @hdr is that copy, and it is what leaves
 *        a GSO frame's vnet hdr_len := its exact headers (the guard's
 *        parse); from here it counts as the segments it becomes
 *        broadcast/multicast over the storm bucket -> drop (drop_storm)
 *        destination:
 *          another port's MAC  -> same VLAN: one copy, the head from @hdr,
 *                                 the rest from the A2H record; another
 *                                 VLAN: drop (drop_other_vlan)
 *          broadcast/multicast -> a flood copy to every other port of the
 *                                 VLAN that needs it (sw_flood():
 *                                 guard_group_scope(): router solicitations,
 *                                 IGMP and MLD reports to trusted routers
 *                                 only, no walk at all when there is none;
 *                                 an IP group by the group table, below)
 *                                 + the wire
 *          anything else       -> the wire, sendmmsg() with the iovec
 *                                 [private vnet, @hdr (+ 802.1Q tag of an
 *                                 access port), rest in ring memory]
 *        uplink_tx_flush(), then one ring_release() for the burst: the wire
 *        has the data before the partition may reuse the space
 *      The bytes the guard checked are the bytes that leave: an agent that
 *      rewrites its ring after the check changes only bytes past @hdr,
 *      which no check read.
 *      A port whose ring violations reach @violation_limit is disconnected
 *      (rule 7): it is neither served nor delivered to any more, and its
 *      counters say so.
 *
 *   3. ring_flush() every H2A ring that got records (@dirtyl; one kick at
 *      most per ring per round, and only if its agent sleeps).
 *
 *   4. Frames moved: the next round at once, or, while frames come
 *      densely, after a nap of the coalescing window, so one wakeup takes
 *      a batch (coalesce.h, like a NIC's adaptive interrupt moderation).
 *      A busy switch does not sleep, so it looks (epoll, no wait) for
 *      armed ports that were kicked meanwhile: they join the live ones.
 *
 *   5. Nothing moved: ring_arm() the live A2H rings but the throttled
 *      ones (they leave @live; ports armed before stay armed), then
 *      epoll_pwait2() on the A2H data pipes, the uplink socket and the
 *      control eventfd, until the first throttled port's buckets refill
 *      (no timeout if none is). Only the ports whose pipe fired are
 *      disarmed and live again: a wakeup costs what has work, not every
 *      port (1,000 idle ports made each wakeup 1,000 pipe reads and port
 *      visits). An idle switch costs no CPU, nor
 *      does a throttled one: its ring is not armed, so its frames do not
 *      wake the loop, the timeout does. ring_arm() re-checks after setting
 *      the waiting flag, so a record published meanwhile is never slept on.
 *      But first, if what moved since the switch woke was a lone frame or
 *      a few from one input (a round trip in flight: its answer comes
 *      soon), the same epoll_pwait2() with a zero timeout, turn after
 *      turn, yielding between (coalesce_poll_ns(): at most three
 *      coalescing windows, rarer after misses, not after the answer
 *      itself), so the answer finds the switch awake and costs no wakeup.
 *
 * H2A full never blocks: the frame is dropped and counted. The uplink
 * never blocks: a refused frame is dropped and counted.
 *
 * Direct delivery. A port with a TAP (sw_port_set_tap()) whose H2A ring is
 * empty (its agent wrote everything before: order is kept) gets a frame
 * written to that TAP by the switch itself (sw_direct(), from sw_deliver()
 * once the RX buckets and the flood share let the copy in: the wire's and
 * other ports' frames, unicast and flood copies alike), with RWF_NOWAIT
 * (never waits): one hop and one copy fewer than the ring and the agent,
 * counted in rx_direct. A kernel whose TAP refuses RWF_NOWAIT ends it for
 * the port. The write runs the partition's receive path on the switch's
 * thread, so it is paid from token buckets of switch time (ns), measured
 * around the write: the port's (@direct, SW_DIRECT_SHARE_PCT) and all
 * ports' (@sw->direct, SW_DIRECT_TOTAL_PCT). Past either, or on any
 * error, the frame goes through the ring as before and the agent counts
 * what it refuses.
 *
 * Fair share. Every copy into a port's H2A ring passes that port's RX
 * token buckets (over: drop_rx_rate); a flood copy also finds the ring at
 * most SW_FLOOD_SHARE full (else drop_flood_share), so floods never take
 * the room a port's unicast needs. Buckets (tbucket.h) conform while not
 * empty and charge a frame its whole size; a GSO frame is charged, and
 * counted, as the segments it becomes (struct guard_frame: packets =
 * segments, bytes = frame + (segments - 1) * headers), from a partition
 * (the guard's parse) and from the wire (sw_wire_segs()), so a GSO frame
 * with a tiny gso_size cannot pass a packet limit as one packet; time is
 * util_now_ns(), read once per port burst and once per wire burst.
 *
 * Capture. sw_capture_add() mirrors one port's frames into a ring of the
 * caller's (a capture ring: the daemon hands its consumer end to
 * `vnetshare capture`): what it received (RX), what it sent and the switch
 * forwarded (TX), or with SW_CAP_DROPS what the switch dropped for it, each
 * with its reason. Every place a port's frame is forwarded or dropped calls
 * sw_tap(), which is one predictable branch (the port's capture count, 0)
 * while no capture runs on that port. A copy goes into the capture ring
 * with ring_reserve() like any H2A copy: a full ring (a slow reader) loses
 * the copy, counted, and never holds the frame or the loop. Capture rings
 * are flushed with the H2A rings, once per round. A port deleted under a
 * capture leaves the capture idle until it is deleted itself. A capture
 * may have a filter (classic BPF, cbpf.h), run on the mirror copy only,
 * before any ring space is taken: a frame it refuses is counted
 * (filtered), not copied; the forwarding path pays nothing for it.
 *
 * Learning. The source MAC of every frame from the wire goes into the
 * FDB (fdb.c: per VLAN, with the time it was last seen, a fixed table, no
 * allocation), so the switch knows which stations the LAN has:
 * sw_fdb_find() and sw_fdb_dump() answer the daemon, which asks before it
 * gives a partition a MAC. The port table does not ask: a daemon that
 * starts again re-adds its partitions' ports while the wire speaks, and a
 * station heard between the daemon's question and the port's add is a
 * conflict from its first frame. A frame from the same
 * station as the frame before costs one compare (the table's last entry);
 * the port that owns a new source MAC is looked up once (@src_port) and
 * kept until the source changes or a port comes or goes. A source that is
 * a port's MAC is a conflict (switch.h, SW_MAC_CONFLICT_*): counted on the
 * port, noted once an episode (below), and while the port is in conflict
 * its unicast from the wire and from other ports goes to the LAN's station
 * under SW_MAC_CONFLICT_YIELD: one predictable branch per delivery
 * (@conflict_ns, 0 outside a conflict).
 *
 * Multicast. With snooping (sw_config.mcast_off 0, the default) both
 * directions' floods of a frame to an IP group MAC ask the group table
 * (mcast.c, one per switch, fixed size): every IGMP/MLD message is
 * snooped first (a partition's copied whole into private memory), a query
 * from the wire or a trusted router floods (every host must hear it) and
 * makes its sender the VLAN's querier, reports and leaves stay scoped to
 * routers. A frame to a group with members goes to those members (a walk
 * of the members, not of the ports) and the trusted routers, a group
 * nobody joined floods until a querier is heard on the VLAN, then goes to
 * the routers only; link-local groups and broadcast flood as before.
 * A partition's group frames always go to the wire too. Copies not made
 * are counted (mcast_scoped). Memberships age out by their expiry, read
 * on delivery; the table is swept on each query and each dump.
 *
 * Notes. A port's first policy drop (a guard verdict, storm control,
 * another VLAN), the start of a MAC conflict or its disconnection since
 * sw_notes_rearm() writes the
 * notification eventfd (sw_notify_fd()) once: the daemon's event watcher
 * sleeps on it instead of polling the counters, so an idle or a clean
 * switch costs it nothing. One predictable branch on the drop path.
 *
 * Policy. struct sw_port_policy is a port's identity (the guard's struct
 * guard_port), VLAN, storm and rate limits. sw_port_set_policy() changes
 * it through the command queue below, between rounds: buckets keep their
 * level (tbucket_set()), a VLAN change moves the port's flood domain with
 * its next frame, a throttled port is looked at again at once.
 *
 * Uplink. The NIC may go away and come back as another device of the same
 * name (a new ifindex: a driver reloaded, a veth re-created), and its
 * socket does not follow it: the kernel unbinds an AF_PACKET socket from a
 * device it unregisters, for good. So the uplink can be swapped while the
 * switch runs, through the command queue like a port: sw_uplink_attach()
 * opens the new socket and maps its RX ring in the caller's thread; the
 * data-plane thread, between rounds, gives it every port's MAC membership,
 * puts it in the epoll set in place of the old one and hands the old one
 * back, which the caller closes once the switch let go of it.
 * sw_uplink_detach() hands the socket back and leaves none (the NIC is
 * gone): frames for the wire are then dropped and counted (drop_no_uplink,
 * tx_drop_no_uplink), the wire is not read, nothing waits. The counters of
 * every socket the switch let go of are kept (@up_gone) and added to the
 * current one's, so the uplink's counters only grow. sw_set_mtu() changes
 * the guard's MTU the same way, between rounds.
 *
 * Two uplinks (failover). The switch holds up to SW_UPLINKS sockets, one
 * per slot (0: the primary NIC, 1: the backup), each attached, swapped
 * and let go of as above, each with every port's MAC membership and in
 * the epoll set. One slot is active (sw_uplink_select()): @up points at
 * its uplink, and the hot path knows no other. The other slot's ring is
 * drained every round and its frames counted (rx_drop_inactive), never
 * delivered, so a LAN that floods to both NICs does not duplicate frames.
 * A move is one command, a pointer assignment between rounds: no socket
 * is opened, no membership added. SW_UPLINK_NONE selects neither (both
 * NICs without carrier): frames for the wire are dropped as no_uplink.
 *
 *   slot[0] primary  ──┐
 *                      ├── @up = slot[@active] (or NULL)   -> RX, TX
 *   slot[1] backup   ──┘   the other: drained, rx_drop_inactive
 *
 * Control. The port table belongs to the data-plane thread. sw_port_add(),
 * sw_port_del() and the stats calls build a command, post it (one at a
 * time), write the control eventfd and wait on a condition variable; the
 * data-plane thread applies it between rounds and signals. While sw_run()
 * is not running, the caller applies the command itself under the same
 * lock, so sw_run() cannot start in the middle of it. Allocation (the port,
 * its ring mappings, dup()ed descriptors) happens in the caller's thread,
 * never in the forwarding loop.
 *
 *   control thread                 data-plane thread
 *   --------------                 -----------------
 *   prepare port (calloc, attach)
 *   lock; cmd = &c; pending = 1
 *   write(ctl_efd)          ---->  round ends; sees pending
 *   wait(cond)                     lock; apply(cmd); done = 1
 *                           <----  signal(cond); unlock
 *   unlock; free what was undone
 *
 * Files. switch.c is the hot path (this file: create and run, the round
 * and its sleep, wire -> ports, ports -> anywhere, delivery, direct
 * writes), one translation unit so gcc inlines what a frame passes
 * through; switch_int.h the private structs and the inlines the files
 * share (the MAC lookup, the capture hook sw_tap(), the live list);
 * switch_mac.c the port table by MAC; switch_capture.c capture; mcast.c
 * the multicast group table;
 * switch_ctl.c the control side (the command queue, the port API,
 * policy, stats, notes, the uplink slots, the forwarding table's export).
 * switch.h is the public API.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
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

/* Data path ------------------------------------------------------------------ */

/**
 * sw_be16() - a big-endian 16-bit field
 * @p:		its first byte
 *
 * Return: the value
 */
static inline unsigned int sw_be16(const uint8_t *p)
{
	return (unsigned int)p[0] << 8 | p[1];
}

/**
 * sw_vlan_known() - does any port belong to VLAN @vid?
 * @sw:		switch
 * @vid:	VLAN id, 1 to SW_VLAN_MAX
 *
 * Only asked on a drop path, to tell the drop's reason.
 *
 * Return: non-zero if one does
 */
static int sw_vlan_known(const struct sw *sw, uint16_t vid)
{
	for (unsigned int i = 0; i < sw->nports; i++)
		if (sw->ports[i]->vlan == vid)
			return 1;
	return 0;
}

/**
 * sw_flood_full() - is a port's H2A ring past its flood share?
 * @q:		port
 *
 * Return: non-zero if more than SW_FLOOD_SHARE_NUM/_DEN of it is used
 */
static inline int sw_flood_full(struct sw_port *q)
{
	return ring_used(q->h2a) * SW_FLOOD_SHARE_DEN >
	       q->h2a_size * SW_FLOOD_SHARE_NUM;
}

/**
 * sw_direct() - write one frame to a port's TAP, if that may be done now
 * @q:		destination port
 * @vnet:	vnet header, @vnet_len bytes (as for sw_deliver())
 * @vnet_len:	12 from a ring, 10 from the wire
 * @head:	the frame's first bytes (private memory)
 * @head_len:	their number
 * @tail:	the rest of the frame
 * @tail_len:	its length
 * @now:	time now, ns
 *
 * Only when @q has a TAP, its H2A ring is empty (everything put there
 * before was written by its agent: order is kept) and the port and the
 * switch have direct time left (SW_DIRECT_*). The write's cost, measured,
 * is charged to both buckets. Any error (the partition's device down, a
 * header it refuses) is left to the ring path, where the agent counts it;
 * a kernel that does not take RWF_NOWAIT for a TAP ends direct delivery
 * for the port.
 *
 * Return: 1 if the TAP took the frame, 0 to go through the ring
 */
static int sw_direct(struct sw_port *q, const void *vnet,
		     unsigned int vnet_len, const uint8_t *head,
		     uint32_t head_len, const uint8_t *tail, uint32_t tail_len,
		     uint64_t now)
{
	struct ring_vnet_hdr vh = { 0 };
	struct iovec iov[3];
	uint64_t t0, spent;
	ssize_t n;

	/* a stream keeps the ring busy: that check first */
	if (q->tap < 0 || ring_used(q->h2a) || !tbucket_ok(&q->direct, now) ||
	    !tbucket_ok(&q->sw->direct, now))
		return 0;
	memcpy(&vh, vnet, vnet_len);
	vh.num_buffers = 0;
	iov[0] = (struct iovec){ &vh, RING_VNET_HDR_LEN };
	iov[1] = (struct iovec){ (void *)head, head_len };
	iov[2] = (struct iovec){ (void *)tail, tail_len };
	t0 = util_now_ns();
	/* RWF_NOWAIT: never waits, whatever O_NONBLOCK says on the
	   description the agent shares (the TAP's send buffer is unlimited
	   unless TUNSETSNDBUF, which neither we nor the agent call) */
	n = pwritev2(q->tap, iov, tail_len ? 3 : 2, -1, RWF_NOWAIT);
	spent = util_now_ns() - t0;
	tbucket_charge(&q->direct, spent);
	tbucket_charge(&q->sw->direct, spent);
	if (unlikely(n < 0 && errno == EOPNOTSUPP)) {
		close(q->tap);	/* a kernel whose TAP has no RWF_NOWAIT */
		q->tap = -1;
	}
	return n >= 0;
}

/**
 * sw_deliver() - copy one frame into a port's H2A ring
 * @q:		destination port
 * @vnet:	vnet header (12 bytes; num_buffers is written as 0)
 * @vnet_len:	bytes of @vnet to take: 12 from a ring, 10 from the wire
 * @head:	the frame's first bytes, from private memory (the copy the
 *		guard checked, or a header the switch wrote)
 * @head_len:	their number, >= RING_ETH_HLEN
 * @tail:	the rest of the frame (ring or RX ring memory)
 * @tail_len:	its length
 * @gf:		what it is charged: @gf->segs frames, @gf->bytes bytes (a GSO
 *		frame as the segments it becomes)
 * @flood:	a flooded copy: skipped past the flood share
 * @now:	time now, ns (RX buckets)
 *
 * One copy: into the ring, or into the partition's TAP when sw_direct()
 * may write it there. A flood copy into a ring past its share, a frame
 * over the port's RX budget, a full ring: dropped, each counted on @q
 * under its reason. Never blocks.
 */
static void sw_deliver(struct sw_port *q, const void *vnet,
		       unsigned int vnet_len, const uint8_t *head,
		       uint32_t head_len, const uint8_t *tail,
		       uint32_t tail_len, const struct guard_frame *gf,
		       int flood, uint64_t now)
{
	uint32_t len = head_len + tail_len;
	uint32_t plen = RING_VNET_HDR_LEN + len;
	struct ring_vnet_hdr *vh;
	uint8_t *p;

	if (unlikely(q->disconnected))
		return;
	if (flood && unlikely(sw_flood_full(q))) {
		q->st.drop_flood_share++;
		sw_tap(q, SW_CAP_RX, SW_DROP_FLOOD_SHARE, head, head_len, tail,
		       tail_len);
		return;
	}
	if (unlikely(!tbucket_ok(&q->rx_bits, now) ||
		     !tbucket_ok(&q->rx_pkts, now))) {
		q->st.drop_rx_rate++;
		sw_tap(q, SW_CAP_RX, SW_DROP_RX_RATE, head, head_len, tail,
		       tail_len);
		return;
	}
	if (likely(plen <= RING_LEN_MAX) &&
	    sw_direct(q, vnet, vnet_len, head, head_len, tail, tail_len,
		      now)) {
		q->st.rx_direct += gf->segs;
		goto delivered;
	}
	if (unlikely(plen > RING_LEN_MAX ||
		     ring_reserve(q->h2a, plen, &p) < 0)) {
		q->st.drop_h2a_full++;
		sw_tap(q, SW_CAP_RX, SW_DROP_H2A_FULL, head, head_len, tail,
		       tail_len);
		return;
	}
	vh = (struct ring_vnet_hdr *)p;
	memcpy(vh, vnet, vnet_len);
	vh->num_buffers = 0;
	memcpy(p + RING_VNET_HDR_LEN, head, head_len);
	memcpy(p + RING_VNET_HDR_LEN + head_len, tail, tail_len);
	ring_commit(q->h2a, plen);
	if (!q->dirty) {
		q->sw->dirtyl[q->sw->ndirty++] = q;
		q->dirty = q->sw->ndirty;
	}
delivered:
	tbucket_charge(&q->rx_bits, gf->bytes * 8);
	tbucket_charge(&q->rx_pkts, gf->segs);
	q->st.rx_frames += gf->segs;
	q->st.rx_bytes += gf->bytes;
	sw_tap(q, SW_CAP_RX, SW_DROP_NONE, head, head_len, tail, tail_len);
}

static inline void sw_note(struct sw *sw, struct sw_port *p);

/**
 * struct sw_copy - a frame to copy into ports, as sw_deliver() takes it
 * @vnet:	its vnet header
 * @vnet_len:	bytes of @vnet: 12 from a ring, 10 from the wire
 * @head:	its first bytes, private memory
 * @head_len:	their number, >= RING_ETH_HLEN
 * @tail:	the rest (ring or RX ring memory)
 * @tail_len:	its length
 * @gf:		what each copy is charged
 */
struct sw_copy {
	const void *vnet;
	unsigned int vnet_len;
	const uint8_t *head;
	uint32_t head_len;
	const uint8_t *tail;
	uint32_t tail_len;
	const struct guard_frame *gf;
};

/**
 * sw_mcast() - snoop a group frame; where it goes by its group
 * @sw:		switch (@sw->mc set)
 * @from:	the port that sent it, or NULL for the wire
 * @vid:	its VLAN
 * @sc:		its scope (guard_group_scope()); a query the table took
 *		becomes GUARD_SCOPE_ALL: every host must hear it
 * @c:		the frame
 * @now:	time now, ns
 * @g:		the group, out, with MCAST_MEMBERS
 *
 * An IGMP message or an IPv6 packet with a hop-by-hop header (every MLD
 * message has one) goes to mcast_snoop(): a partition's copied whole into
 * @sw->mc_copy first (its private copy is GUARD_HDR_COPY bytes, a v3
 * report may be longer), the wire's read in place. Reports and leaves keep
 * their scope: routers only (RFC 4541 2.1.1, report suppression). Any other
 * frame the guard scoped (ARP, ND) keeps its scope; the rest is routed by
 * its group (mcast_route()).
 *
 * Return: enum mcast_route
 */
static int sw_mcast(struct sw *sw, struct sw_port *from, uint16_t vid,
		    struct guard_scope *sc, const struct sw_copy *c,
		    uint64_t now, const struct mcast_group **g)
{
	unsigned int type = sw_be16(c->head + 12);
	const uint8_t *l3 = c->tail;
	uint32_t l3_len = c->tail_len, n;
	int msg;

	if (c->head_len > RING_ETH_HLEN) {
		l3 = c->head + RING_ETH_HLEN;
		l3_len = c->head_len - RING_ETH_HLEN;
	}
	if (unlikely((type == SW_ETH_P_IP && l3_len >= 20 && l3[9] == 2) ||
		     (type == SW_ETH_P_IPV6 && l3_len >= 40 && l3[6] == 0))) {
		if (from && c->tail_len) {	/* the whole message, private */
			n = c->head_len + c->tail_len;
			if (n > GUARD_HDR_COPY_MAX)
				n = GUARD_HDR_COPY_MAX;
			memcpy(sw->mc_copy, c->head, c->head_len);
			memcpy(sw->mc_copy + c->head_len, c->tail,
			       n - c->head_len);
			l3 = sw->mc_copy + RING_ETH_HLEN;
			l3_len = n - RING_ETH_HLEN;
		}
		msg = mcast_snoop(sw->mc, vid, from, from ? from->id : 0,
				  !from || (from->guard.flags &
					    GUARD_F_TRUSTED_ROUTER),
				  type, l3, l3_len, now);
		if (msg == MCAST_MSG_REPORT) {
			sw->st.mcast_reports++;
			return MCAST_FLOOD;
		}
		if (msg == MCAST_MSG_QUERY) {
			sw->st.mcast_queries++;
			if (!from || (from->guard.flags &
				      GUARD_F_TRUSTED_ROUTER))
				sc->kind = GUARD_SCOPE_ALL;
			return MCAST_FLOOD;
		}
	}
	if (sc->kind != GUARD_SCOPE_ALL)
		return MCAST_FLOOD;
	return mcast_route(sw->mc, vid, type, l3, l3_len, now, g);
}

/**
 * sw_flood_group() - a group frame's copies by the group table
 * @sw:		switch
 * @from:	the port that sent it, or NULL for the wire
 * @vid:	its VLAN
 * @g:		its group (MCAST_MEMBERS), or NULL (MCAST_ROUTERS)
 * @c:		the frame
 * @now:	time now, ns
 *
 * The group's live members of @vid but @from, then the router ports (the
 * trusted routers; a port walk only when there is one) that are not
 * members; the wire is the caller's. The copies the VLAN's other ports did
 * not get are counted in mcast_scoped.
 *
 * Return: the copies handed to sw_deliver()
 */
static unsigned int sw_flood_group(struct sw *sw, struct sw_port *from,
				   uint16_t vid, const struct mcast_group *g,
				   const struct sw_copy *c, uint64_t now)
{
	unsigned int n = 0;

	for (uint32_t i = g ? g->first : 0; i;) {
		const struct mcast_member *e = mcast_member(sw->mc, i);
		struct sw_port *q = e->port;

		i = e->next;
		if (q == from || e->expires <= now || q->vlan != vid ||
		    q->disconnected)
			continue;
		sw_deliver(q, c->vnet, c->vnet_len, c->head, c->head_len,
			   c->tail, c->tail_len, c->gf, 1, now);
		n++;
	}
	for (unsigned int i = 0; unlikely(sw->nrouters) && i < sw->nports;
	     i++) {
		struct sw_port *q = sw->ports[i];

		if (q == from || q->vlan != vid || q->disconnected ||
		    !(q->guard.flags & GUARD_F_TRUSTED_ROUTER) ||
		    (g && mcast_is_member(sw->mc, g, q, now)))
			continue;
		sw_deliver(q, c->vnet, c->vnet_len, c->head, c->head_len,
			   c->tail, c->tail_len, c->gf, 1, now);
		n++;
	}
	sw->st.mcast_scoped += sw->vlan_ports[vid] - !!from - n;
	return n;
}

/**
 * sw_flood() - a group frame's copies to the ports of its VLAN that need it
 * @sw:		switch
 * @from:	the port that sent it (never a copy), or NULL for the wire
 * @vid:	its VLAN (0 untagged)
 * @sc:		its scope (guard_group_scope())
 * @c:		the frame
 * @now:	time now, ns
 *
 * Both directions' floods: wire -> ports and ports -> anywhere (the
 * caller sends a partition's frame to the wire after). With snooping
 * (@sw->mc), IGMP/MLD is learned from and a frame for an IP group MAC
 * (01:00:5e/25, 33:33/16; not broadcast) goes where the group table says
 * (sw_mcast(), sw_flood_group()). Else, a frame only
 * routers or an address's owner need (@sc) skips every other port,
 * counted in flood_scoped; with no trusted router at all, a routers-only
 * frame walks no port.
 *
 * Inlined into each of its two callers (as the two loops it replaced
 * were): a call with the frame in a struct cost 3.5 % more instructions
 * per flooded frame than the loops, inlined 1.4 % (callgrind,
 * scripts/callgrind_switch.py).
 *
 * Return: the copies handed to sw_deliver() (rx_delivered from the wire)
 */
static inline __attribute__((always_inline)) unsigned int
sw_flood(struct sw *sw, struct sw_port *from, uint16_t vid,
	 struct guard_scope *sc, const struct sw_copy *c, uint64_t now)
{
	const struct mcast_group *g = NULL;
	unsigned int n = 0;

	if (sw->mc && sw_mac_is_ipmc(c->head) &&
	    sw_mcast(sw, from, vid, sc, c, now, &g) != MCAST_FLOOD)
		return sw_flood_group(sw, from, vid, g, c, now);
	if (sc->kind == GUARD_SCOPE_ROUTERS && !sw->nrouters) {
		sw->st.flood_scoped += sw->vlan_ports[vid] - !!from;
		return 0;
	}
	for (unsigned int i = 0; i < sw->nports; i++) {
		struct sw_port *q = sw->ports[i];

		if (q == from || q->vlan != vid || q->disconnected)
			continue;
		if (sc->kind != GUARD_SCOPE_ALL &&
		    !guard_port_wants(&q->guard, sc)) {
			sw->st.flood_scoped++;
			continue;
		}
		sw_deliver(q, c->vnet, c->vnet_len, c->head, c->head_len,
			   c->tail, c->tail_len, c->gf, 1, now);
		n++;
	}
	return n;
}

/**
 * sw_yields() - does a port leave the unicast for its MAC to the LAN's
 * station now (a conflict under SW_MAC_CONFLICT_YIELD)?
 * @sw:		switch
 * @p:		port
 * @now:	time now, ns
 *
 * One predictable branch for a port in no conflict.
 *
 * Return: non-zero if it does
 */
static inline int sw_yields(struct sw *sw, struct sw_port *p, uint64_t now)
{
	return unlikely(p->conflict_ns) &&
	       sw->cfg.mac_conflict == SW_MAC_CONFLICT_YIELD &&
	       sw_in_conflict(sw, p, now);
}

/**
 * sw_unicast_port() - the port a unicast frame from a port goes to
 * @sw:		switch
 * @mac:	its destination MAC
 * @now:	time now, ns
 *
 * A port that yields its MAC (sw_yields()) is none: the frame goes to the
 * wire, where the LAN's station with that MAC is.
 *
 * Return: the port, or NULL for the wire
 */
static inline struct sw_port *sw_unicast_port(struct sw *sw,
					      const uint8_t *mac, uint64_t now)
{
	struct sw_port *q = sw_lookup(sw, mac);

	return q && sw_yields(sw, q, now) ? NULL : q;
}

/**
 * sw_learn() - learn the source of a frame from the wire; see a conflict
 * @sw:		switch
 * @src:	its source MAC (the private copy of its header)
 * @vid:	its VLAN, 0 untagged
 * @now:	time now, ns
 *
 * The FDB gets the station (fdb_learn(): one compare for the same station
 * as the frame before). If the source is a port's MAC, in any VLAN (a
 * router's MAC is one station on all of its VLANs), the port is in a MAC
 * conflict: counted, and noted to the daemon when it starts.
 */
static inline void sw_learn(struct sw *sw, const uint8_t *src, uint16_t vid,
			    uint64_t now)
{
	const struct fdb_entry *e;
	struct sw_port *q;
	int added;

	if (unlikely(sw_mac_is_group(src)))
		return;		/* no station sends from a group MAC */
	e = fdb_learn(&sw->fdb, src, vid, now, &added);
	if (unlikely(added || e != sw->src_e)) {
		sw->src_e = e;
		sw->src_port = sw_lookup(sw, src);
	}
	q = sw->src_port;
	if (unlikely(q)) {
		if (!q->conflict_ns || !sw_in_conflict(sw, q, now))
			sw_note(sw, q);		/* an episode starts */
		q->conflict_ns = now;
		q->st.mac_conflicts++;
	}
}

/**
 * sw_wire_segs() - what a frame from the wire is charged: its segments
 * @vnet:	the kernel's vnet header (offsets from the untagged frame)
 * @l3:		the frame past its Ethernet header (RX ring memory)
 * @len:	the untagged frame's length
 * @gf:		@gf->segs and @gf->bytes, out
 *
 * A GSO frame from the wire (GRO, or a LAN host's TSO through a veth)
 * comes with NEEDS_CSUM at its L4 header (tcp_gro_complete() and
 * udp_gro_complete() set it): the headers end there plus the TCP data
 * offset, or 8 for UDP. A header the kernel wrote otherwise is charged
 * one frame, as before.
 */
static void sw_wire_segs(const struct ring_vnet_hdr *vnet, const uint8_t *l3,
			 uint32_t len, struct guard_frame *gf)
{
	unsigned int gso = vnet->gso_type & ~RING_VNET_GSO_ECN;
	uint32_t cs = vnet->csum_start, hl;

	*gf = (struct guard_frame){ .segs = 1, .bytes = len };
	if (likely(gso == RING_VNET_GSO_NONE) || !vnet->gso_size ||
	    !(vnet->flags & SW_NEEDS_CSUM) || cs < RING_ETH_HLEN)
		return;
	if (gso == RING_VNET_GSO_UDP_L4)
		hl = cs + 8;
	else if (cs + 13 <= len)	/* the TCP data offset, byte 12 */
		hl = cs + (l3[cs - RING_ETH_HLEN + 12] >> 4) * 4u;
	else
		return;
	if (hl > len)
		return;
	gf->hdr_len = hl;
	gf->segs = guard_gso_segs(len, hl, vnet->gso_size, &gf->bytes);
}

/**
 * sw_uplink_frame() - deliver one frame from the wire
 * @sw:		switch
 * @f:		the frame, in the uplink's RX ring
 * @now:	time now, ns
 *
 * The frame's VLAN: the tag the NIC stripped (@f->vlan_valid), else an
 * 802.1Q tag inline, which is taken out: the partition gets the frame
 * untagged, and the vnet header's offsets move back by 4. Priority tags
 * (VLAN id 0) count as untagged. Its source is learned (sw_learn()); a
 * unicast frame for a port that yields its MAC (sw_yields()) is the LAN
 * station's, not the port's: dropped for the port (drop_mac_conflict).
 *
 *   inline:  | dst src | 8100 TCI | type L3... |
 *   sent on: | dst src | type | L3...          |  head (14, private)
 *                             ^ tail = frame + 18
 */
static void sw_uplink_frame(struct sw *sw, const struct uplink_frame *f,
			    uint64_t now)
{
	struct ring_vnet_hdr vnet = { 0 };
	const uint8_t *tail = f->mac + RING_ETH_HLEN;
	uint8_t head[RING_ETH_HLEN];
	struct guard_frame gf;
	uint32_t len = f->len;
	uint16_t vid = 0;
	struct sw_port *q;

	memcpy(&vnet, f->vnet, UPLINK_VNET_HDR_LEN);
	memcpy(head, f->mac, RING_ETH_HLEN);
	if (f->vlan_valid) {
		vid = f->vlan_tci & SW_VID_MASK;
	} else if (sw_be16(f->mac + 12) == SW_ETH_P_8021Q &&
		   len >= RING_ETH_HLEN + SW_VLAN_HLEN) {
		vid = sw_be16(f->mac + 14) & SW_VID_MASK;
		memcpy(head + 12, f->mac + 16, 2);	/* the inner type */
		tail += SW_VLAN_HLEN;
		len -= SW_VLAN_HLEN;
		if ((vnet.flags & SW_NEEDS_CSUM) && vnet.csum_start >= 18)
			vnet.csum_start -= SW_VLAN_HLEN;
		if (vnet.hdr_len >= 18)
			vnet.hdr_len -= SW_VLAN_HLEN;
	}
	sw_learn(sw, head + 6, vid, now);
	sw_wire_segs(&vnet, tail, len, &gf);
	if (sw_mac_is_group(head)) {
		struct guard_scope sc;
		struct sw_copy c = { &vnet, UPLINK_VNET_HDR_LEN, head,
				     RING_ETH_HLEN, tail, len - RING_ETH_HLEN,
				     &gf };

		guard_group_scope(head, tail, len - RING_ETH_HLEN, &sc);
		sw->st.rx_delivered += sw_flood(sw, NULL, vid, &sc, &c, now);
		if (vid && !sw->vlan_ports[vid])
			sw->st.rx_drop_vlan++;
		return;
	}
	q = sw_lookup(sw, head);
	if (unlikely(!q || q->disconnected || q->vlan != vid)) {
		if (vid && !sw_vlan_known(sw, vid))
			sw->st.rx_drop_vlan++;
		else if (!q || q->disconnected)
			sw->st.rx_drop_unknown++;
		else
			sw->st.rx_drop_other_vlan++;
		return;
	}
	if (sw_yields(sw, q, now)) {
		q->st.drop_mac_conflict++;
		sw_tap(q, SW_CAP_RX, SW_DROP_MAC_CONFLICT, head, RING_ETH_HLEN,
		       tail, len - RING_ETH_HLEN);
		return;
	}
	sw_deliver(q, &vnet, UPLINK_VNET_HDR_LEN, head, RING_ETH_HLEN, tail,
		   len - RING_ETH_HLEN, &gf, 0, now);
	sw->st.rx_delivered++;
}

/**
 * sw_uplink_rx() - wire -> ports, one burst
 * @sw:		switch
 *
 * Return: frames taken from the wire (0 while there is no uplink)
 */
static unsigned int sw_uplink_rx(struct sw *sw)
{
	struct uplink_frame f;
	unsigned int n = 0;
	uint64_t now = 0;

	if (unlikely(!sw->up))	/* the NIC is gone: nothing to read */
		return 0;
	while (n < sw->cfg.uplink_burst && !uplink_rx_next(sw->up, &f)) {
		if (!n)
			now = util_now_ns();
		n++;
		sw->st.rx_frames++;
		sw->st.rx_bytes += f.len;
		sw_uplink_frame(sw, &f, now);
	}
	uplink_rx_release(sw->up);
	return n;
}

/**
 * sw_note() - tell the daemon's watcher, once until rearmed, that a port
 * had a policy drop, a MAC conflict started or it was disconnected
 * @sw:		switch
 * @p:		port
 */
static inline void sw_note(struct sw *sw, struct sw_port *p)
{
	uint64_t one = 1;

	if (likely(p->noted))
		return;
	p->noted = 1;
	if (write(sw->note_efd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is full, a wakeup is pending anyway */
	}
}

/**
 * sw_port_check() - fold ring violations in; disconnect past the limit
 * @sw:		switch
 * @p:		port
 */
static void sw_port_check(struct sw *sw, struct sw_port *p)
{
	uint64_t v = ring_violations(p->a2h);

	if (likely(v == p->st.violations))
		return;
	p->st.violations = v;
	if (unlikely(v >= sw->cfg.violation_limit &&
		     sw->cfg.violation_limit != SW_VIOLATION_NEVER &&
		     !p->disconnected)) {
		p->disconnected = 1;
		p->st.disconnected = 1;
		sw_note(sw, p);
		epoll_ctl(sw->epfd, EPOLL_CTL_DEL, p->fds[0], NULL);
	}
}

/**
 * sw_tx_throttle() - is a port over its TX budget? Then throttle it
 * @p:		port
 * @now:	time now, ns
 *
 * The frames wait in its A2H ring: none is taken, so none is dropped.
 * While it has any waiting, the port is not served and its ring not armed
 * until its buckets refill (sw_sleep() sleeps until then at the latest).
 *
 * Return: non-zero if the port must not send now
 */
static int sw_tx_throttle(struct sw_port *p, uint64_t now)
{
	uint64_t wait, w;

	if (likely(tbucket_ok(&p->tx_bits, now) &&
		   tbucket_ok(&p->tx_pkts, now)))
		return 0;
	if (ring_ready(p->a2h, 0)) {	/* empty ring: armed as usual */
		wait = tbucket_wait_ns(&p->tx_bits, now);
		w = tbucket_wait_ns(&p->tx_pkts, now);
		if (w > wait)
			wait = w;
		p->throttled_until = now + (wait ? wait : 1);
		p->st.tx_throttled++;
	}
	return 1;
}

/**
 * sw_guard_long() - ask the guard again on a longer private copy
 * @sw:		switch
 * @p:		source port
 * @rec:	the frame
 * @hdr:	the first copy, @hdr_len bytes, which the guard found too short
 * @hdr_len:	its length
 * @want:	the copy the guard asked for (guard_check_frame())
 * @gf:		what the guard found, out, as guard_check_frame() fills it
 *
 * Rule 2 of guard.h: the first @hdr_len bytes come from @hdr (the L2
 * header among them, the one ring.c validated), the rest from the ring,
 * into @sw->hdr_long; the verdict is the guard's on that copy, which the
 * caller then sends. A copy longer than GUARD_HDR_COPY_MAX, or than the
 * frame, is never made: the frame stays hidden.
 *
 * Return: the verdict
 */
static enum guard_verdict sw_guard_long(struct sw *sw, struct sw_port *p,
					const struct ring_rec *rec,
					const uint8_t *hdr, uint32_t hdr_len,
					uint32_t want, struct guard_frame *gf)
{
	if (want <= hdr_len || want > rec->frame_len || want > GUARD_HDR_COPY_MAX)
		return GUARD_DROP_HIDDEN;
	memcpy(sw->hdr_long, hdr, hdr_len);
	memcpy(sw->hdr_long + hdr_len, rec->frame + hdr_len, want - hdr_len);
	return guard_check_frame(&p->guard, rec, sw->hdr_long, want,
				 sw->cfg.mtu, gf);
}

/**
 * sw_port_tx() - one port's A2H burst, switched
 * @sw:		switch
 * @p:		source port
 *
 * guard_check_frame() gives each frame's verdict on a private copy of its
 * first bytes (rule 5, VLAN, MTU, the L3 identity, the destination class);
 * a drop is counted under the verdict's counter. The copy is what leaves.
 *
 * Return: frames taken from the ring (dropped ones included)
 */
/* sw_port_tx()'s frame, as the guard checked it, to @p's captures */
#define SW_TAP_TX(drop)							\
	sw_tap(p, SW_CAP_TX, (drop), hdr, hdr_len, rec.frame + hdr_len,	\
	       rec.frame_len - hdr_len)

static unsigned int sw_port_tx(struct sw *sw, struct sw_port *p)
{
	uint8_t hdr_copy[GUARD_HDR_COPY], *hdr;
	struct uplink_tx_result res;
	unsigned int n = 0, wire = 0;
	uint64_t now = util_now_ns(), wire_segs = 0;
	uint32_t bytes = 0, hdr_len;
	struct guard_frame gf;
	enum guard_verdict v;
	struct ring_rec rec;
	struct sw_port *q;

	if (unlikely(p->throttled_until)) {
		if (now < p->throttled_until)
			return 0;
		p->throttled_until = 0;
	}
	while (n < sw->cfg.burst_frames && bytes < sw->cfg.burst_bytes &&
	       !sw_tx_throttle(p, now) && !ring_peek(p->a2h, &rec)) {
		n++;
		bytes += rec.frame_len;
		/* rule 2: one private copy; its L2 header the one ring.c checked */
		hdr = hdr_copy;
		hdr_len = rec.frame_len < GUARD_HDR_COPY ? rec.frame_len
							 : GUARD_HDR_COPY;
		memcpy(hdr, rec.frame, hdr_len);
		memcpy(hdr, rec.l2, RING_ETH_HLEN);
		v = guard_check_frame(&p->guard, &rec, hdr, hdr_len,
				      sw->cfg.mtu, &gf);
		if (unlikely(gf.want)) {	/* a DHCP message: a longer copy */
			uint32_t want = gf.want;

			v = sw_guard_long(sw, p, &rec, hdr, hdr_len, want, &gf);
			if (v != GUARD_DROP_HIDDEN) {
				hdr = sw->hdr_long;
				hdr_len = want;
			}
		}
		q = NULL;
		if (v == GUARD_PASS_GROUP) {
			if (!tbucket_take(&p->storm, gf.segs, now)) {
				p->st.drop_storm++;
				SW_TAP_TX(SW_DROP_STORM);
				sw_note(sw, p);
				continue;
			}
		} else if (v == GUARD_PASS_UNICAST) {
			/* never p: GUARD_DROP_LOOP; NULL: the wire */
			q = sw_unicast_port(sw, hdr, now);
			if (q && q->vlan != p->vlan) {
				p->st.drop_other_vlan++;
				SW_TAP_TX(SW_DROP_OTHER_VLAN);
				sw_note(sw, p);
				continue;
			}
		} else {	/* every drop verdict: counted under its own */
			if (v >= GUARD__MAX)
				v = GUARD_DROP_LOOP;
			p->st.guard_drops[v]++;
			SW_TAP_TX(SW_DROP_GUARD + v);
			sw_note(sw, p);
			continue;
		}
		/* what leaves says exactly where a segment's headers end */
		if (rec.vnet.gso_type != RING_VNET_GSO_NONE)
			rec.vnet.hdr_len = (uint16_t)gf.hdr_len;
		/* a GSO frame: as the segments it becomes (guard.h) */
		tbucket_charge(&p->tx_bits, gf.bytes * 8);
		tbucket_charge(&p->tx_pkts, gf.segs);
		p->st.tx_frames += gf.segs;
		p->st.tx_bytes += gf.bytes;
		SW_TAP_TX(SW_DROP_NONE);
		if (v == GUARD_PASS_GROUP) {
			struct guard_scope sc;
			struct sw_copy c = { &rec.vnet, RING_VNET_HDR_LEN, hdr,
					     hdr_len, rec.frame + hdr_len,
					     rec.frame_len - hdr_len, &gf };

			guard_group_scope(hdr, hdr + RING_ETH_HLEN,
					  hdr_len - RING_ETH_HLEN, &sc);
			sw_flood(sw, p, p->vlan, &sc, &c, now);
		} else if (q) {
			sw_deliver(q, &rec.vnet, RING_VNET_HDR_LEN, hdr,
				   hdr_len, rec.frame + hdr_len,
				   rec.frame_len - hdr_len, &gf, 0, now);
			continue;
		}
		if (unlikely(!sw->up)) {	/* the NIC is gone */
			p->st.drop_no_uplink++;
			sw->st.tx_drop_no_uplink++;
			SW_TAP_TX(SW_DROP_NO_UPLINK);
			continue;
		}
		if (unlikely(uplink_tx_queue(sw->up, &rec.vnet, hdr, hdr_len,
					     p->vlan, rec.frame,
					     rec.frame_len))) {
			p->st.drop_uplink_tx++;
			SW_TAP_TX(SW_DROP_UPLINK_TX);
			continue;
		}
		wire++;
		wire_segs += gf.segs;
	}
	if (wire) {
		/* the wire has every byte before the partition gets the space */
		uplink_tx_flush(sw->up, &res);
		p->st.tx_to_wire += wire_segs;
		p->st.guard_drops[GUARD_DROP_MTU] += res.msgsize;
		p->st.drop_uplink_tx += res.errors;
		sw->st.tx_drop_msgsize += res.msgsize;
		sw->st.tx_drop_errors += res.errors;
	}
	if (n)
		ring_release(p->a2h);
	sw_port_check(sw, p);
	return n;
}

/**
 * sw_flush_h2a() - publish every H2A and capture ring that got records
 * this round
 * @sw:		switch
 */
static void sw_flush_h2a(struct sw *sw)
{
	for (unsigned int i = 0; i < sw->ndirty; i++) {
		struct sw_port *q = sw->dirtyl[i];

		ring_flush(q->h2a);
		q->dirty = 0;
	}
	sw->ndirty = 0;
	for (unsigned int i = 0; i < sw->ncaps; i++) {
		struct sw_cap *c = sw->caps[i];

		if (c->dirty)
			ring_flush(c->ring);
		c->dirty = 0;
	}
}

/**
 * sw_moved_from() - note the input a round moved frames from
 * @sw:		switch
 * @in:		the port, or @sw for the wire
 */
static inline void sw_moved_from(struct sw *sw, const void *in)
{
	if (!sw->from)
		sw->from = in;
	else if (sw->from != in)
		sw->from_many = 1;
}

/**
 * sw_uplink_drain() - the inactive uplinks' frames: taken and counted
 * @sw:		switch
 *
 * Their rings must not fill (the kernel would count drops there and the
 * epoll set would stay readable), and their frames must not reach a port:
 * a LAN that floods to both NICs would deliver each frame twice.
 */
static void sw_uplink_drain(struct sw *sw)
{
	struct uplink_frame f;

	for (unsigned int i = 0; i < SW_UPLINKS; i++) {
		struct uplink *u = sw->slot[i];
		unsigned int n = 0;

		if (!u || u == sw->up)
			continue;
		while (n < sw->cfg.uplink_burst && !uplink_rx_next(u, &f)) {
			n++;
			sw->st.rx_drop_inactive++;
		}
		uplink_rx_release(u);
	}
}

/**
 * sw_round() - one forwarding round
 * @sw:		switch
 *
 * Return: frames moved (0: the switch may sleep)
 */
static unsigned int sw_round(struct sw *sw)
{
	unsigned int work, got, n = sw->nlive;

	sw->st.rounds++;
	work = sw_uplink_rx(sw);
	if (work)
		sw_moved_from(sw, sw);
	if (unlikely(sw->slot[1] != NULL || sw->up != sw->slot[0]))
		sw_uplink_drain(sw);
	if (n) {	/* a port disconnected here stays in @live until sw_sleep() */
		unsigned int start = sw->rr++ % n;

		for (unsigned int k = 0; k < n; k++) {
			struct sw_port *p = sw->live[(start + k) % n];

			if (p->disconnected)
				continue;
			got = sw_port_tx(sw, p);
			if (got)
				sw_moved_from(sw, p);
			work += got;
		}
	}
	sw_flush_h2a(sw);
	return work;
}

/**
 * sw_sleep() - arm the live ports' A2H rings and sleep until something happens
 * @sw:		switch
 *
 * Ports that were armed before stay armed: only those whose data pipe
 * fired are disarmed (one pipe read each) and served again, so a wakeup
 * costs the ports that have work, not every port.
 * A throttled port's ring is not armed (its frames wait for tokens, not
 * for us): the sleep ends when the first throttled port's buckets refill,
 * at the latest.
 *
 * With @poll_ns, the sleep begins with a poll: sw_events() with a zero
 * timeout, turn after turn (coalesce_poll_turn() yields between them),
 * until an event or the budget's end (or a throttled port's refill time).
 *
 * Return: 1 if the poll found the answer (input from another input than
 * the one that moved frames, sw->from), 2 if it found other input (the
 * same one again: a stream, or a command), 0, or -errno from
 * epoll_pwait2()
 */
static int sw_events(struct sw *sw, const struct timespec *tmo);

static int sw_sleep(struct sw *sw, const struct coalesce *co,
		    uint64_t poll_ns)
{
	static const struct timespec zero;
	uint64_t v, until = UINT64_MAX, now = 0;
	struct timespec ts, *tmo = NULL;
	int n;

	for (unsigned int i = 0; i < sw->nlive;) {
		struct sw_port *p = sw->live[i];

		if (p->disconnected) {
			sw_live_del(sw, p);	/* @live[i] is another now */
			continue;
		}
		if (p->throttled_until) {
			if (p->throttled_until < until)
				until = p->throttled_until;
			i++;
			continue;
		}
		if (ring_arm(p->a2h, 0))	/* work already: don't sleep */
			return 0;
		p->armed = 1;
		sw_live_del(sw, p);
	}
	if (__atomic_load_n(&sw->stop, __ATOMIC_ACQUIRE) ||
	    __atomic_load_n(&sw->pending, __ATOMIC_ACQUIRE))
		return 0;
	if (poll_ns) {
		uint64_t deadline = util_now_ns() + poll_ns;

		if (deadline > until)
			deadline = until;
		sw->st.polls++;
		sw->answered = 0;
		do {
			n = sw_events(sw, &zero);
		} while (!n && coalesce_poll_turn(co, deadline));
		if (n > 0 && sw->answered)
			sw->st.poll_hits++;
		if (n)
			return n < 0 ? n : sw->answered ? 1 : 2;
	}
	if (until != UINT64_MAX) {
		now = util_now_ns();
		v = until > now ? until - now : 0;
		ts.tv_sec = (time_t)(v / 1000000000ull);
		ts.tv_nsec = (long)(v % 1000000000ull);
		tmo = &ts;
	}
	sw->st.sleeps++;
	n = sw_events(sw, tmo);
	return n < 0 ? n : 0;
}

/**
 * sw_epoll_wait() - epoll_pwait2(), or epoll_wait() where it is missing
 * @epfd:	the switch's epoll
 * @ev:		SW_EVENTS events out
 * @tmo:	NULL: until one comes; else how long at most
 *
 * epoll_pwait2() (Linux 5.11) takes a timeout in nanoseconds, which the
 * coalescing wait needs. Where it is missing (ENOSYS: an older kernel, or
 * valgrind before 3.20, which scripts/callgrind_switch.py runs under),
 * epoll_wait() waits the timeout rounded up to a millisecond; the first
 * ENOSYS is remembered, so the fallback costs one failed call per process.
 *
 * Return: as epoll_wait(): the events, or -1 with errno set
 */
static int sw_epoll_wait(int epfd, struct epoll_event *ev,
			 const struct timespec *tmo)
{
	static int no_pwait2;
	int n, ms;

	if (likely(!no_pwait2)) {
		n = epoll_pwait2(epfd, ev, SW_EVENTS, tmo, NULL);
		if (likely(n >= 0 || errno != ENOSYS))
			return n;
		no_pwait2 = 1;
	}
	ms = -1;
	if (tmo)
		ms = tmo->tv_sec >= INT_MAX / 1000 - 1 ? INT_MAX :
		     (int)(tmo->tv_sec * 1000 + (tmo->tv_nsec + 999999) / 1000000);
	return epoll_wait(epfd, ev, SW_EVENTS, ms);
}

/**
 * sw_events() - wait up to @tmo for events and take them in
 * @sw:		switch
 * @tmo:	NULL: until one comes; zero: only look
 *
 * A kicked port is disarmed and served by the next rounds; the control
 * eventfd is read (the command itself is taken at the top of the loop);
 * an uplink error is cleared.
 *
 * Return: the events taken (0: none), or -errno from epoll_pwait2()
 */
static int sw_events(struct sw *sw, const struct timespec *tmo)
{
	struct epoll_event ev[SW_EVENTS];
	struct uplink *u;
	uint64_t v;
	int n, err;

	n = sw_epoll_wait(sw->epfd, ev, tmo);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		if (ev[i].data.u64 > SW_EV_LAST) {	/* a port's data pipe */
			struct sw_port *p = ev[i].data.ptr;

			if (p != sw->from)
				sw->answered = 1;

			ring_disarm(p->a2h);
			p->armed = 0;
			sw_live_add(sw, p);
			continue;
		}
		if (ev[i].data.u64 == SW_EV_CTL)
			while (read(sw->ctl_efd, &v, sizeof(v)) < 0 &&
			       errno == EINTR)
				;
		if (ev[i].data.u64 == SW_EV_CTL)
			continue;
		u = sw->slot[ev[i].data.u64 - SW_EV_UPLINK];
		if (u && u == sw->up && sw->from != sw)
			sw->answered = 1;
		/* link down or gone: read the error, or POLLERR stays up */
		if ((ev[i].events & EPOLLERR) && u)
			uplink_clear_error(u, &err);
	}
	return n;
}

/**
 * sw_drain_cmds() - apply the pending command, if any (data-plane thread)
 * @sw:		switch
 */
static void sw_drain_cmds(struct sw *sw)
{
	if (!__atomic_load_n(&sw->pending, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&sw->lock);
	if (sw->cmd) {
		sw_apply(sw, sw->cmd);
		sw->cmd = NULL;
		pthread_cond_broadcast(&sw->cond);
	}
	__atomic_store_n(&sw->pending, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&sw->lock);
}

/* Life cycle ----------------------------------------------------------------- */

/**
 * sw_create() - open the uplink and make an empty switch
 * @out:	new switch, out
 * @uplink_ifindex: the NIC, in the calling thread's network namespace
 * @cfg:	settings, or NULL for defaults
 *
 * Return: 0 or -errno (from uplink_open(), epoll, eventfd; -EINVAL for a
 * bad setting, -ENOMEM for the tables)
 */
int sw_create(struct sw **out, int uplink_ifindex, const struct sw_config *cfg)
{
	struct epoll_event ev = { .events = EPOLLIN };
	uint64_t seed;
	struct sw *sw;
	int rc;

	if (!out)
		return -EINVAL;
	sw = calloc(1, sizeof(*sw));
	if (!sw)
		return -ENOMEM;
	sw->epfd = -1;
	sw->ctl_efd = -1;
	sw->note_efd = -1;
	sw->coalesce_usecs = COALESCE_USECS_DEFAULT;
	if (cfg)
		sw->cfg = *cfg;
	if (!sw->cfg.burst_frames)
		sw->cfg.burst_frames = SW_BURST_FRAMES_DEFAULT;
	if (!sw->cfg.burst_bytes)
		sw->cfg.burst_bytes = SW_BURST_BYTES_DEFAULT;
	if (!sw->cfg.uplink_burst)
		sw->cfg.uplink_burst = SW_UPLINK_BURST_DEFAULT;
	if (!sw->cfg.violation_limit)
		sw->cfg.violation_limit = SW_VIOLATION_LIMIT_DEFAULT;
	if (!sw->cfg.max_ports)
		sw->cfg.max_ports = SW_PORTS_DEFAULT;
	if (!sw->cfg.direct_pct)
		sw->cfg.direct_pct = SW_DIRECT_SHARE_PCT;
	if (!sw->cfg.fdb_size)
		sw->cfg.fdb_size = FDB_SIZE_DEFAULT;
	if (!sw->cfg.fdb_age_s)
		sw->cfg.fdb_age_s = FDB_AGE_DEFAULT_S;
	if (sw->cfg.max_ports > SW_PORTS_LIMIT || sw->cfg.direct_pct > 100 ||
	    sw->cfg.fdb_age_s > FDB_AGE_MAX_S ||
	    sw->cfg.mac_conflict > SW_MAC_CONFLICT_KEEP ||
	    sw->cfg.mcast_off > 1) {
		free(sw);
		return -EINVAL;
	}
	tbucket_init(&sw->direct,
		     (sw->cfg.direct_pct > SW_DIRECT_TOTAL_PCT ?
		      sw->cfg.direct_pct : SW_DIRECT_TOTAL_PCT) * 10000000ull,
		     SW_DIRECT_BURST_NS, util_now_ns());
	sw->mac_mask = 1;
	while (sw->mac_mask + 1 < 2 * sw->cfg.max_ports)
		sw->mac_mask = sw->mac_mask * 2 + 1;
	sw->ports = calloc(sw->cfg.max_ports, sizeof(*sw->ports));
	sw->macs = calloc(sw->mac_mask + 1ull, sizeof(*sw->macs));
	sw->live = calloc(sw->cfg.max_ports, sizeof(*sw->live));
	sw->dirtyl = calloc(sw->cfg.max_ports, sizeof(*sw->dirtyl));
	if (!sw->ports || !sw->macs || !sw->live || !sw->dirtyl) {
		free(sw->ports);
		free(sw->macs);
		free(sw->live);
		free(sw->dirtyl);
		free(sw);
		return -ENOMEM;
	}
	pthread_mutex_init(&sw->lock, NULL);
	pthread_cond_init(&sw->cond, NULL);

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
		seed = util_now_ns() ^ (uint64_t)(uintptr_t)sw;
	rc = fdb_init(&sw->fdb, sw->cfg.fdb_size,
		      sw->cfg.fdb_age_s * 1000000000ull, seed);
	if (rc)
		goto fail;
	if (!sw->cfg.mcast_off) {
		sw->mc = mcast_create();
		if (!sw->mc) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	rc = uplink_open(&sw->up, uplink_ifindex, &sw->cfg.uplink);
	if (rc)
		goto fail;
	sw->slot[0] = sw->up;
	sw->active = 0;
	sw->opened[0] = 1;
	sw->st.attached = 1;
	if (!sw->cfg.mtu) {
		rc = uplink_mtu(sw->up, &sw->cfg.mtu);
		if (rc)
			goto fail;
	}
	if (sw->cfg.mtu > RING_FRAME_MAX - RING_ETH_HLEN) {
		rc = -EINVAL;
		goto fail;
	}
	sw->epfd = epoll_create1(EPOLL_CLOEXEC);
	sw->ctl_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	sw->note_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (sw->epfd < 0 || sw->ctl_efd < 0 || sw->note_efd < 0) {
		rc = -errno;
		goto fail;
	}
	ev.data.u64 = SW_EV_CTL;
	if (epoll_ctl(sw->epfd, EPOLL_CTL_ADD, sw->ctl_efd, &ev) < 0) {
		rc = -errno;
		goto fail;
	}
	ev.data.u64 = SW_EV_UPLINK;
	if (epoll_ctl(sw->epfd, EPOLL_CTL_ADD, uplink_fd(sw->up), &ev) < 0) {
		rc = -errno;
		goto fail;
	}
	*out = sw;
	return 0;
fail:
	sw_destroy(sw);
	return rc;
}

/**
 * sw_destroy() - free a switch whose sw_run() has returned (or never ran)
 * @sw:		switch, may be NULL
 *
 * Ports still in the table are removed: their rings unmapped, our
 * descriptors closed (the caller's stay open).
 */
void sw_destroy(struct sw *sw)
{
	if (!sw)
		return;
	for (unsigned int i = 0; i < sw->nports; i++)
		sw_port_free(sw->ports[i]);
	for (unsigned int i = 0; i < sw->ncaps; i++)
		sw_cap_free(sw->caps[i]);
	for (unsigned int i = 0; i < SW_UPLINKS; i++)
		uplink_close(sw->slot[i]);
	if (sw->epfd >= 0)
		close(sw->epfd);
	if (sw->ctl_efd >= 0)
		close(sw->ctl_efd);
	if (sw->note_efd >= 0)
		close(sw->note_efd);
	pthread_cond_destroy(&sw->cond);
	pthread_mutex_destroy(&sw->lock);
	fdb_fini(&sw->fdb);
	mcast_destroy(sw->mc);
	free(sw->ports);
	free(sw->macs);
	free(sw->live);
	free(sw->dirtyl);
	free(sw);
}

/**
 * sw_stop() - make sw_run() return; callable from any thread, sticky
 * @sw:		switch
 *
 * Return: 0 or -errno from the eventfd write
 */
int sw_stop(struct sw *sw)
{
	return util_stop(&sw->stop, sw->ctl_efd);
}

/**
 * sw_set_coalesce() - set the coalescing window while sw_run() is not running
 * @sw:		switch
 * @usecs:	microseconds (COALESCE_USECS_DEFAULT unless set), 0 for off:
 *		then the switch sleeps whenever a round moves nothing
 *
 * Return: 0, -EINVAL above COALESCE_USECS_MAX, -EBUSY while sw_run() runs
 */
int sw_set_coalesce(struct sw *sw, unsigned int usecs)
{
	int rc = 0;

	if (usecs > COALESCE_USECS_MAX)
		return -EINVAL;
	pthread_mutex_lock(&sw->lock);
	if (sw->running)
		rc = -EBUSY;
	else
		sw->coalesce_usecs = usecs;
	pthread_mutex_unlock(&sw->lock);
	return rc;
}

/**
 * sw_run() - the forwarding loop; returns after sw_stop()
 * @sw:		switch
 *
 * Run it in a thread of its own (from Python: cffi releases the GIL).
 * Commands posted while it runs are applied between rounds; one posted as
 * it ends is applied before it returns.
 *
 * Return: 0 after sw_stop() (at once if it was called before), -EBUSY if
 * another sw_run() is running, or -errno from epoll_wait()
 */
int sw_run(struct sw *sw)
{
	struct coalesce co;
	unsigned int moved;
	uint64_t poll_ns;
	int rc = 0;

	pthread_mutex_lock(&sw->lock);
	if (sw->running) {
		pthread_mutex_unlock(&sw->lock);
		return -EBUSY;
	}
	sw->running = 1;
	coalesce_init(&co, sw->coalesce_usecs);
	pthread_mutex_unlock(&sw->lock);

	while (!__atomic_load_n(&sw->stop, __ATOMIC_ACQUIRE)) {
		sw_drain_cmds(sw);
		moved = sw_round(sw);
		if (moved) {
			if (coalesce_round(&co, moved))
				sw->st.naps++;
			/* armed ports that were kicked meanwhile: a busy
			   switch does not sleep, so it looks without waiting */
			if (sw->nlive < sw->nports) {
				static const struct timespec zero;

				rc = sw_events(sw, &zero);
				if (unlikely(rc < 0))
					break;
				rc = 0;
			}
			continue;
		}
		coalesce_round(&co, 0);
		/* frames from one input only: a round trip in flight */
		poll_ns = coalesce_poll_ns(&co, !sw->from_many);
		coalesce_sleeping(&co);
		rc = sw_sleep(sw, &co, poll_ns);	/* sw_events() reads @from */
		sw->from = NULL;
		sw->from_many = 0;
		if (unlikely(rc < 0))
			break;
		if (poll_ns && rc != 2)
			coalesce_polled(&co, rc);
		/* an answer within the window is dense traffic too (TCP's
		   ACKs): busy, so the next rounds batch as before */
		coalesce_woken(&co);
		rc = 0;
	}

	pthread_mutex_lock(&sw->lock);
	sw->running = 0;
	if (sw->cmd) {
		sw_apply(sw, sw->cmd);
		sw->cmd = NULL;
		__atomic_store_n(&sw->pending, 0, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&sw->cond);
	}
	pthread_mutex_unlock(&sw->lock);
	return rc;
}
