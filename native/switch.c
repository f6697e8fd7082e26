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
 *                                 VLAN that needs it (guard_group_scope():
 *                                 router solicitations and MLD reports to
 *                                 trusted routers only, no walk at all
 *                                 when there is none) + the wire
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
#include "fdb.h"
#include "guard.h"
#include "switch.h"
#include "tbucket.h"
#include "util.h"

#define SW_EV_CTL	0ull	/* epoll data of the control eventfd */
#define SW_EV_UPLINK	1ull	/* epoll data of slot 0's uplink socket; slot i: +i */
#define SW_EV_LAST	(SW_EV_UPLINK + SW_UPLINKS - 1)
/* epoll data of a port's A2H data pipe: the struct sw_port pointer */
#define SW_EVENTS	64
#define SW_ETH_P_8021Q	0x8100u
#define SW_VLAN_HLEN	4u
#define SW_VID_MASK	0x0fffu
#define SW_NEEDS_CSUM	1u	/* VIRTIO_NET_HDR_F_NEEDS_CSUM */

enum sw_cmd_op {
	SW_CMD_ADD = 1,
	SW_CMD_DEL,
	SW_CMD_PORT_STATS,
	SW_CMD_UPLINK_STATS,
	SW_CMD_POLICY,
	SW_CMD_ALL_STATS,
	SW_CMD_CAP_ADD,
	SW_CMD_CAP_DEL,
	SW_CMD_REARM,
	SW_CMD_TAP,
	SW_CMD_FDB_FIND,
	SW_CMD_FDB_DUMP,
	SW_CMD_FDB_TABLE,
	SW_CMD_UPLINK,
	SW_CMD_MTU,
	SW_CMD_SELECT,
};

/**
 * struct sw_cap - one capture
 * @id:		its id, unique while it exists (sw_capture_add())
 * @port_id:	the port it mirrors
 * @flags:	SW_CAP_RX, SW_CAP_TX, SW_CAP_DROPS
 * @snaplen:	most bytes of a frame it keeps
 * @filter:	its checked classic BPF program (cbpf.h), NULL for none
 * @ring:	the capture ring, producer side
 * @fds:	our dup()s of the ring's pipe ends (wait, kick)
 * @dirty:	records committed this round, not flushed yet
 * @st:		counters
 */
struct sw_cap {
	uint32_t id;
	uint32_t port_id;
	uint32_t flags;
	uint32_t snaplen;
	struct cbpf_insn *filter;
	struct ring *ring;
	int fds[2];
	int dirty;
	struct sw_capture_stats st;
};

/**
 * struct sw_port - one partition's port
 * @id:		the caller's port id
 * @guard:	what the guard checks its frames against: its MAC (the only
 *		source MAC it may send from), addresses and flags (guard.h)
 * @vlan:	0 untagged, else its access VLAN
 * @storm:	bucket of its broadcast/multicast frames (packets)
 * @tx_bits:	bucket of what it sends, bits
 * @tx_pkts:	bucket of what it sends, packets
 * @rx_bits:	bucket of what it receives, bits
 * @rx_pkts:	bucket of what it receives, packets
 * @throttled_until: 0, or the time its TX buckets refill: not served and
 *		its ring not armed until then
 * @h2a_size:	data size of @h2a (for the flood share)
 * @a2h:	A2H ring, consumer side
 * @h2a:	H2A ring, producer side
 * @fds:	our dup()s of the rings' pipe ends (a2h wait, a2h kick, h2a
 *		wait, h2a kick): the rings use them, the caller's may close
 * @tap:	our dup() of the partition's TAP (sw_port_set_tap()), -1 for
 *		none: frames for an empty @h2a are written there directly
 * @direct:	bucket of switch time (ns) for those writes (SW_DIRECT_*)
 * @dirty:	records committed to @h2a this round, not flushed yet
 * @armed:	@a2h is armed: the agent kicks its data pipe when it writes.
 *		An idle port stays armed across the switch's sleeps; only a
 *		kicked port is disarmed (sw_sleep())
 * @live_at:	its index in @sw->live + 1; 0: not there (armed, or
 *		disconnected)
 * @sw:		the switch it is in (its dirty list)
 * @disconnected: rule 7 tripped: neither served nor delivered to
 * @noted:	a policy drop or the disconnection was notified since the
 *		last sw_notes_rearm()
 * @conflict_ns: when the wire last showed its MAC as a source (a MAC
 *		conflict, see switch.h); 0 once that was an ageing time ago
 * @ncaps:	entries in @caps: 0 while no capture runs on it (sw_tap())
 * @caps:	captures of this port
 * @st:		counters (ring counters are folded in when read)
 */
struct sw_port {
	uint32_t id;
	struct guard_port guard;
	uint16_t vlan;
	struct tbucket storm;
	struct tbucket tx_bits;
	struct tbucket tx_pkts;
	struct tbucket rx_bits;
	struct tbucket rx_pkts;
	uint64_t throttled_until;
	uint64_t h2a_size;
	struct ring *a2h;
	struct ring *h2a;
	int fds[4];
	int tap;
	struct tbucket direct;
	unsigned int dirty;
	int armed;
	unsigned int live_at;
	struct sw *sw;
	int disconnected;
	int noted;
	uint64_t conflict_ns;
	unsigned int ncaps;
	struct sw_cap *caps[SW_PORT_CAPTURES_MAX];
	struct sw_port_stats st;
};

/**
 * struct sw_cmd - one control request, applied by the data-plane thread
 * @op:		enum sw_cmd_op
 * @port_id:	port concerned (SW_CMD_CAP_DEL: the capture's id)
 * @port:	SW_CMD_ADD: the prepared port; SW_CMD_DEL: the removed one, out
 * @pol:	SW_CMD_POLICY: the new policy, validated (sw_policy_check())
 * @port_st:	stats out (SW_CMD_PORT_STATS, SW_CMD_DEL; SW_CMD_ALL_STATS:
 *		an array of @max)
 * @ids:	SW_CMD_ALL_STATS: port ids out, an array of @max
 * @max:	SW_CMD_ALL_STATS: entries of @ids and @port_st
 * @n:		SW_CMD_ALL_STATS: ports there are, out (more than @max: only
 *		@max were filled)
 * @cap:	SW_CMD_CAP_ADD: the prepared capture (its id is set here);
 *		SW_CMD_CAP_DEL: the removed one, out
 * @cap_st:	SW_CMD_CAP_DEL: its last counters, out (may be NULL)
 * @uplink_st:	stats out (SW_CMD_UPLINK_STATS)
 * @fd:		SW_CMD_TAP: the port's new TAP descriptor (-1: none); out,
 *		its old one, for the caller to close
 * @mac:	SW_CMD_FDB_FIND: the MAC to look for
 * @fdb:	SW_CMD_FDB_FIND: the entry, out; SW_CMD_FDB_DUMP: an array of
 *		@max entries, out (@n: entries there are)
 * @rows:	SW_CMD_FDB_TABLE: an array of @max rows, out (@n: rows there
 *		are)
 * @up:		SW_CMD_UPLINK: the new uplink (NULL: none); out, the old
 *		one (or, if refused, the new one), for the caller to close
 * @slot:	SW_CMD_UPLINK: the slot @up goes into; SW_CMD_SELECT: the slot
 *		to make active (SW_UPLINK_NONE: none)
 * @mtu:	SW_CMD_MTU: the new MTU, checked
 * @rc:		0 or -errno, out
 * @done:	set when applied
 */
struct sw_cmd {
	int op;
	uint32_t port_id;
	struct sw_port *port;
	const struct sw_port_policy *pol;
	struct sw_port_stats *port_st;
	uint32_t *ids;
	unsigned int max;
	unsigned int n;
	struct sw_cap *cap;
	struct sw_capture_stats *cap_st;
	struct sw_uplink_stats *uplink_st;
	int fd;
	const uint8_t *mac;
	struct fdb_info *fdb;
	struct sw_fdb_row *rows;
	struct uplink *up;
	unsigned int slot;
	uint32_t mtu;
	int rc;
	int done;
};

/**
 * struct sw - the switch
 * @up:		the active uplink, @slot[@active]; NULL while its NIC is gone
 *		(sw_uplink_detach()) or none is active (SW_UPLINK_NONE)
 * @slot:	the uplinks by slot (0: primary, 1: backup), NULL if none
 * @active:	the active slot, or SW_UPLINK_NONE
 * @opened:	sockets each slot has had: one after the first is a rebind
 * @up_gone:	the counters of the uplinks the switch let go of, summed
 * @cfg:	settings, defaults applied
 * @ports:	active ports, compact (order is only the round-robin order),
 *		an array of @cfg.max_ports
 * @nports:	entries in @ports
 * @macs:	the ports by MAC: open addressing, linear probing, @mac_mask
 *		+ 1 slots (a power of two, at least twice @cfg.max_ports), so
 *		a lookup is one or two probes whatever the number of ports
 * @live:	the ports a round serves: not armed (kicked, new, or
 *		throttled), an array of @cfg.max_ports. A round and a sleep
 *		cost what is live, not what exists (issue 12: 1,000 idle ports
 *		cost every wakeup 1,000 pipe reads and port visits)
 * @nlive:	entries in @live
 * @dirtyl:	the ports whose H2A ring got records this round (a port's
 *		@dirty is its index here + 1), an array of @cfg.max_ports
 * @ndirty:	entries in @dirtyl
 * @vlan_ports: ports per VLAN id (0: untagged)
 * @nrouters:	ports with GUARD_F_TRUSTED_ROUTER
 * @rr:		round-robin start
 * @from:	the first input (a port, or @sw itself for the wire) that
 *		moved frames since the switch last woke or polled
 * @from_many:	another input moved frames since then too: a request and
 *		its answer, or unrelated traffic, not a round trip in flight
 * @answered:	sw_events() saw an input other than @from: during a poll,
 *		the answer (the same input again is a stream)
 * @epfd:	epoll of A2H data pipes, uplink socket, control eventfd
 * @ctl_efd:	control eventfd (commands and stop)
 * @note_efd:	notification eventfd (sw_note(), sw_notify_fd())
 * @stop:	sw_stop() was called; sticky
 * @pending:	a command waits in @cmd
 * @running:	sw_run() is in its loop (under @lock)
 * @lock:	protects @cmd, @running, @call_busy
 * @cond:	signals a command done, or the call slot free
 * @call_busy:	a caller owns the command slot
 * @cmd:	the command being applied
 * @coalesce_usecs: coalescing window (coalesce.h), 0 for off
 * @caps:	every capture, compact (flushed once per round)
 * @ncaps:	entries in @caps
 * @cap_id:	the last capture id given
 * @direct:	bucket of switch time (ns) for all ports' direct writes
 * @fdb:	the stations learned on the wire (fdb.h)
 * @src_e:	the FDB entry of the last source learned...
 * @src_port:	...and the port whose MAC that source is, or NULL: looked
 *		up again when the entry changes; reset when a port comes or
 *		goes (sw_learn())
 * @st:		wire-side and loop counters
 * @hdr_long:	the longer private copy of a frame the guard reads further
 *		(a DHCP message, sw_guard_long()): one frame at a time
 */
struct sw {
	struct uplink *up;
	struct uplink *slot[SW_UPLINKS];
	unsigned int active;
	unsigned int opened[SW_UPLINKS];
	struct uplink_stats up_gone;
	struct sw_config cfg;
	struct sw_port **ports;
	unsigned int nports;
	struct sw_port **macs;
	uint32_t mac_mask;
	struct sw_port **live;
	unsigned int nlive;
	struct sw_port **dirtyl;
	unsigned int ndirty;
	uint32_t vlan_ports[SW_VLAN_MAX + 1];
	unsigned int nrouters;
	unsigned int rr;
	const void *from;
	int from_many;
	int answered;
	int epfd;
	int ctl_efd;
	int note_efd;
	int stop;
	int pending;
	int running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int call_busy;
	struct sw_cmd *cmd;
	unsigned int coalesce_usecs;
	struct sw_cap *caps[SW_CAPTURES_MAX];
	unsigned int ncaps;
	uint32_t cap_id;
	struct tbucket direct;
	struct fdb fdb;
	const struct fdb_entry *src_e;
	struct sw_port *src_port;
	struct sw_uplink_stats st;
	uint8_t hdr_long[GUARD_HDR_COPY_MAX];
};

_Static_assert(sizeof(struct sw_fdb_row) == 24, "a forwarding table row is 24 bytes");
_Static_assert(GUARD_HDR_COPY <= UPLINK_TX_HDR_MAX &&
	       GUARD_HDR_COPY_MAX <= UPLINK_TX_HDR_LONG,
	       "the uplink sends every private copy the guard checked");

/**
 * sw_mac_is_group() - broadcast or multicast destination?
 * @mac:	six bytes
 *
 * Return: non-zero for a group address
 */
static inline int sw_mac_is_group(const uint8_t *mac)
{
	return mac[0] & 1;
}

/**
 * sw_mac_eq() - compare two MAC addresses
 * @a:		six bytes
 * @b:		six bytes
 *
 * Return: non-zero if equal
 */
static inline int sw_mac_eq(const uint8_t *a, const uint8_t *b)
{
	return !memcmp(a, b, 6);
}

/**
 * sw_mac_slot() - where a MAC's search starts in @sw->macs
 * @sw:		switch
 * @mac:	six bytes
 *
 * Return: the slot index
 */
static inline uint32_t sw_mac_slot(const struct sw *sw, const uint8_t *mac)
{
	uint64_t v = util_mac64(mac);

	return (uint32_t)((v * 0x9e3779b97f4a7c15ull) >> 32) & sw->mac_mask;
}

/**
 * sw_lookup() - the port whose MAC is @mac
 * @sw:		switch
 * @mac:	destination MAC
 *
 * The table is at most half full: a miss ends at an empty slot soon.
 *
 * Return: the port, or NULL
 */
static struct sw_port *sw_lookup(const struct sw *sw, const uint8_t *mac)
{
	for (uint32_t i = sw_mac_slot(sw, mac);; i = (i + 1) & sw->mac_mask) {
		struct sw_port *p = sw->macs[i];

		if (!p || sw_mac_eq(p->guard.mac, mac))
			return p;
	}
}

/**
 * sw_mac_add() - enter a port into the MAC table (its MAC is not there)
 * @sw:		switch
 * @p:		port
 */
static void sw_mac_add(struct sw *sw, struct sw_port *p)
{
	uint32_t i = sw_mac_slot(sw, p->guard.mac);

	while (sw->macs[i])
		i = (i + 1) & sw->mac_mask;
	sw->macs[i] = p;
}

/**
 * sw_mac_del() - take a port out of the MAC table
 * @sw:		switch
 * @p:		port, in the table
 *
 * Linear probing without tombstones: the entries after the hole that
 * would no longer be found are moved back into it (Knuth's algorithm R).
 */
static void sw_mac_del(struct sw *sw, struct sw_port *p)
{
	uint32_t i = sw_mac_slot(sw, p->guard.mac), j, k;

	while (sw->macs[i] != p)
		i = (i + 1) & sw->mac_mask;
	for (j = i;;) {
		sw->macs[i] = NULL;
		for (;;) {
			j = (j + 1) & sw->mac_mask;
			if (!sw->macs[j])
				return;
			k = sw_mac_slot(sw, sw->macs[j]->guard.mac);
			/* k cyclically in (i, j]: the entry stays reachable */
			if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
				continue;
			break;
		}
		sw->macs[i] = sw->macs[j];
		i = j;
	}
}

/**
 * sw_find() - the active port with id @id
 * @sw:		switch
 * @id:		port id
 * @idx:	its index in @sw->ports, out (may be NULL)
 *
 * Return: the port, or NULL
 */
static struct sw_port *sw_find(const struct sw *sw, uint32_t id,
			       unsigned int *idx)
{
	for (unsigned int i = 0; i < sw->nports; i++) {
		if (sw->ports[i]->id == id) {
			if (idx)
				*idx = i;
			return sw->ports[i];
		}
	}
	return NULL;
}

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
static __attribute__((noinline, cold)) void
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
 * sw_tap() - a port's frame was forwarded or dropped: capture it if asked
 * @p:		port
 * @dir:	SW_CAP_RX (it was for @p) or SW_CAP_TX (@p sent it)
 * @drop:	enum sw_drop
 * @head:	the frame's first bytes
 * @head_len:	their number
 * @tail:	the rest
 * @tail_len:	its length
 *
 * One predictable branch while no capture runs on @p.
 */
static inline void sw_tap(struct sw_port *p, unsigned int dir,
			  unsigned int drop, const uint8_t *head,
			  uint32_t head_len, const uint8_t *tail,
			  uint32_t tail_len)
{
	if (unlikely(p->ncaps))
		sw_cap_copy(p, dir, drop, head, head_len, tail, tail_len);
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
 * sw_in_conflict() - is a port in a MAC conflict now? (ends one that aged)
 * @sw:		switch
 * @p:		port, @p->conflict_ns not 0
 * @now:	time now, ns
 *
 * A conflict lasts while the wire showed the port's MAC as a source
 * within the FDB's ageing time; once over, @p->conflict_ns is 0 again and
 * the deliveries to @p skip the question.
 *
 * Return: non-zero while it lasts
 */
static int sw_in_conflict(struct sw *sw, struct sw_port *p, uint64_t now)
{
	if (now <= p->conflict_ns || now - p->conflict_ns < sw->fdb.age_ns)
		return 1;
	p->conflict_ns = 0;
	return 0;
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
	int known = 0;

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

		guard_group_scope(head, tail, len - RING_ETH_HLEN, &sc);
		if (sc.kind == GUARD_SCOPE_ROUTERS && !sw->nrouters) {
			/* for routers and no port is one: the idle chatter
			   (RS, MLD reports) costs no walk of every port */
			sw->st.flood_scoped += sw->vlan_ports[vid];
			if (vid && !sw->vlan_ports[vid])
				sw->st.rx_drop_vlan++;
			return;
		}
		for (unsigned int i = 0; i < sw->nports; i++) {
			q = sw->ports[i];
			if (q->vlan != vid)
				continue;
			known = 1;
			if (q->disconnected)
				continue;
			if (sc.kind != GUARD_SCOPE_ALL &&
			    !guard_port_wants(&q->guard, &sc)) {
				sw->st.flood_scoped++;
				continue;
			}
			sw_deliver(q, &vnet, UPLINK_VNET_HDR_LEN, head,
				   RING_ETH_HLEN, tail, len - RING_ETH_HLEN, &gf,
				   1, now);
			sw->st.rx_delivered++;
		}
		if (vid && !known)
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

			guard_group_scope(hdr, hdr + RING_ETH_HLEN,
					  hdr_len - RING_ETH_HLEN, &sc);
			/* for routers and no port is one: the wire alone, no
			   walk of every port (as from the wire) */
			if (sc.kind == GUARD_SCOPE_ROUTERS && !sw->nrouters)
				sw->st.flood_scoped +=
					sw->vlan_ports[p->vlan] - 1;
			for (unsigned int i = 0; i < sw->nports &&
			     (sc.kind != GUARD_SCOPE_ROUTERS || sw->nrouters);
			     i++) {
				q = sw->ports[i];
				if (q == p || q->vlan != p->vlan)
					continue;
				if (sc.kind != GUARD_SCOPE_ALL &&
				    !guard_port_wants(&q->guard, &sc)) {
					sw->st.flood_scoped++;
					continue;
				}
				sw_deliver(q, &rec.vnet, RING_VNET_HDR_LEN, hdr,
					   hdr_len, rec.frame + hdr_len,
					   rec.frame_len - hdr_len, &gf, 1, now);
			}
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
 * sw_live_add() - a port may have work: rounds serve it
 * @sw:		switch
 * @p:		port
 */
static void sw_live_add(struct sw *sw, struct sw_port *p)
{
	if (p->live_at || p->disconnected)
		return;
	sw->live[sw->nlive++] = p;
	p->live_at = sw->nlive;
}

/**
 * sw_live_del() - rounds no longer serve a port (armed, disconnected, gone)
 * @sw:		switch
 * @p:		port
 */
static void sw_live_del(struct sw *sw, struct sw_port *p)
{
	unsigned int i = p->live_at - 1;

	if (!p->live_at)
		return;
	sw->live[i] = sw->live[--sw->nlive];
	sw->live[i]->live_at = i + 1;
	sw->live[sw->nlive] = NULL;
	p->live_at = 0;
}

/**
 * sw_port_count() - count a port in (@delta 1) or out (-1) of the VLAN
 * and router tallies the floods use
 * @sw:		switch
 * @p:		port
 * @delta:	1 or -1
 */
static void sw_port_count(struct sw *sw, struct sw_port *p, int delta)
{
	sw->vlan_ports[p->vlan] += (uint32_t)delta;
	if (p->guard.flags & GUARD_F_TRUSTED_ROUTER)
		sw->nrouters += (unsigned int)delta;
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

	n = epoll_pwait2(sw->epfd, ev, SW_EVENTS, tmo, NULL);
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

/* Control -------------------------------------------------------------------- */

/**
 * sw_port_fill_stats() - a port's counters with its ring counters folded in
 * @p:		port
 * @st:		out
 */
static void sw_port_fill_stats(struct sw_port *p, struct sw_port_stats *st)
{
	struct ring_stats rs;
	uint64_t v = 0;

	*st = p->st;
	ring_get_stats(p->a2h, &rs);
	for (unsigned int i = 0; i < RING_DROP__MAX; i++) {
		st->ring_drops[i] = rs.drops[i];
		v += rs.drops[i];
	}
	st->violations = v;
	st->ring_skipped_bytes = rs.skipped_bytes;
	st->disconnected = (uint64_t)p->disconnected;
	st->a2h_used = ring_used(p->a2h);
	st->h2a_used = ring_used(p->h2a);
	st->ring_bytes = p->h2a_size;
	st->captures = p->ncaps;
	st->mac_conflict = p->conflict_ns &&
			   sw_in_conflict(p->sw, p, util_now_ns());
}

/**
 * sw_policy_check() - is a port policy valid?
 * @pol:	policy
 *
 * Return: 0, or -EINVAL: NULL, a group or zero MAC, a VLAN id past
 * SW_VLAN_MAX, a rate without a burst
 */
static int sw_policy_check(const struct sw_port_policy *pol)
{
	const struct sw_rate *r[2];

	if (!pol || sw_mac_is_group(pol->guard.mac) ||
	    !memcmp(pol->guard.mac, "\0\0\0\0\0\0", 6) ||
	    pol->vlan > SW_VLAN_MAX || (pol->storm_pps && !pol->storm_burst))
		return -EINVAL;
	r[0] = &pol->tx;
	r[1] = &pol->rx;
	for (int i = 0; i < 2; i++)
		if ((r[i]->bits_per_sec && !r[i]->bits_burst) ||
		    (r[i]->pkts_per_sec && !r[i]->pkts_burst))
			return -EINVAL;
	return 0;
}

/**
 * sw_port_apply_policy() - take a (checked) policy into a port
 * @p:		port
 * @pol:	policy, sw_policy_check() passed
 * @init:	a new port: buckets start full; else they keep their level
 *		(tbucket_set())
 */
static void sw_port_apply_policy(struct sw_port *p,
				 const struct sw_port_policy *pol, int init)
{
	uint64_t now = util_now_ns();
	struct {
		struct tbucket *tb;
		uint64_t rate, burst;
	} b[] = {
		{ &p->storm, pol->storm_pps, pol->storm_burst },
		{ &p->tx_bits, pol->tx.bits_per_sec, pol->tx.bits_burst },
		{ &p->tx_pkts, pol->tx.pkts_per_sec, pol->tx.pkts_burst },
		{ &p->rx_bits, pol->rx.bits_per_sec, pol->rx.bits_burst },
		{ &p->rx_pkts, pol->rx.pkts_per_sec, pol->rx.pkts_burst },
	};

	p->guard = pol->guard;
	p->vlan = pol->vlan;
	for (unsigned int i = 0; i < sizeof(b) / sizeof(b[0]); i++) {
		if (init)
			tbucket_init(b[i].tb, b[i].rate, b[i].burst, now);
		else
			tbucket_set(b[i].tb, b[i].rate, b[i].burst, now);
	}
	p->throttled_until = 0;		/* looked at again next round */
}

/**
 * sw_uplink_stats_add() - add one uplink's counters to a sum
 * @sum:	the sum
 * @st:		the counters to add
 */
static void sw_uplink_stats_add(struct uplink_stats *sum,
				const struct uplink_stats *st)
{
	sum->rx_frames += st->rx_frames;
	sum->rx_bytes += st->rx_bytes;
	sum->rx_truncated += st->rx_truncated;
	sum->rx_kernel_drops += st->rx_kernel_drops;
	sum->rx_wakeups += st->rx_wakeups;
	sum->tx_frames += st->tx_frames;
	sum->tx_bytes += st->tx_bytes;
	sum->tx_msgsize += st->tx_msgsize;
	sum->tx_errors += st->tx_errors;
	sum->tx_calls += st->tx_calls;
	sum->socket_errors += st->socket_errors;
}

/**
 * sw_uplink_swap() - SW_CMD_UPLINK: put @c->up in slot @c->slot
 * @sw:		switch
 * @c:		command: @c->up the new uplink or NULL; on success it is
 *		set to the slot's old one (maybe NULL), else left as it was
 *
 * The new socket gets every port's MAC membership and the old one's place
 * in the epoll set, all or nothing; the old one's counters go into
 * @sw->up_gone. Between rounds, its TX batch is empty (every burst flushes
 * it), so nothing queued points into ring memory.
 *
 * Return: 0 or -errno (a membership or the epoll set refused)
 */
static int sw_uplink_swap(struct sw *sw, struct sw_cmd *c)
{
	struct epoll_event ev = { .events = EPOLLIN,
				  .data.u64 = SW_EV_UPLINK + c->slot };
	struct uplink *old = sw->slot[c->slot], *new = c->up;
	struct uplink_stats st;
	unsigned int i;
	int rc = 0;

	if (new) {	/* refused: the caller closes @new, memberships too */
		for (i = 0; i < sw->nports && !rc; i++)
			rc = uplink_add_mac(new, sw->ports[i]->guard.mac);
		if (!rc && epoll_ctl(sw->epfd, EPOLL_CTL_ADD, uplink_fd(new),
				     &ev) < 0)
			rc = -errno;
		if (rc)
			return rc;
		if (sw->opened[c->slot]++)	/* the backup's first is none */
			sw->st.rebinds++;
	}
	if (old) {
		epoll_ctl(sw->epfd, EPOLL_CTL_DEL, uplink_fd(old), NULL);
		if (!uplink_get_stats(old, &st))
			sw_uplink_stats_add(&sw->up_gone, &st);
	}
	sw->slot[c->slot] = new;
	sw->up = sw->active < SW_UPLINKS ? sw->slot[sw->active] : NULL;
	sw->st.attached = !!sw->up;
	c->up = old;
	return 0;
}

/**
 * sw_port_new_mac() - give a port another MAC (SW_CMD_POLICY), before its
 * new policy is applied
 * @sw:		switch
 * @p:		port
 * @mac:	the new MAC (sw_policy_check() found it a unicast one)
 *
 * The port's MAC table entry and the uplink's unicast membership follow the
 * MAC; the port is out of any conflict of its old MAC, and the wire's last
 * source is looked up again. Frames already in its A2H ring with the old
 * source MAC are the guard's (drop_mac_spoof) once the policy is applied.
 *
 * Return: 0, -EEXIST (another port has @mac) or the uplink's -errno
 */
static int sw_port_new_mac(struct sw *sw, struct sw_port *p,
			   const uint8_t *mac)
{
	int rc;

	if (sw_lookup(sw, mac))
		return -EEXIST;
	rc = sw->up ? uplink_add_mac(sw->up, mac) : 0;
	if (rc)
		return rc;
	if (sw->up)
		uplink_del_mac(sw->up, p->guard.mac);
	sw_mac_del(sw, p);
	memcpy(p->guard.mac, mac, 6);
	sw_mac_add(sw, p);
	p->conflict_ns = 0;
	sw->src_e = NULL;
	sw->src_port = NULL;
	return 0;
}

/**
 * sw_fdb_rows() - the forwarding table: every port's MAC (static), then
 * the stations learned on the wire (SW_CMD_FDB_TABLE)
 * @sw:		switch
 * @out:	an array of @max rows (may be NULL if @max is 0)
 * @max:	rows @out holds
 *
 * Return: rows there are (written: at most @max)
 */
static unsigned int sw_fdb_rows(struct sw *sw, struct sw_fdb_row *out,
				unsigned int max)
{
	uint64_t now = util_now_ns();
	const struct fdb_entry *e;
	unsigned int n = 0;
	uint32_t k = 0;

	for (unsigned int i = 0; i < sw->nports; i++, n++) {
		const struct sw_port *p = sw->ports[i];

		if (n >= max)
			continue;
		memset(&out[n], 0, sizeof(out[n]));
		memcpy(out[n].mac, p->guard.mac, 6);
		out[n].vlan = p->vlan;
		out[n].port_id = p->id;
		out[n].flags = SW_FDB_STATIC;
	}
	while ((e = fdb_next(&sw->fdb, now, &k)), e) {
		if (n < max) {
			struct fdb_info info;

			fdb_describe(e, now, &info);
			memset(&out[n], 0, sizeof(out[n]));
			memcpy(out[n].mac, info.mac, 6);
			out[n].vlan = info.vlan;
			out[n].port_id = SW_FDB_PORT_UPLINK;
			out[n].age_ns = info.age_ns;
		}
		n++;
	}
	return n;
}

/**
 * sw_apply() - carry out a command; the caller holds @sw->lock and is
 * the data-plane thread, or sw_run() is not running
 * @sw:		switch
 * @c:		command; @c->rc is set
 */
static void sw_apply(struct sw *sw, struct sw_cmd *c)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct sw_port *p;
	unsigned int idx;
	int rc;

	sw->st.commands++;
	switch (c->op) {
	case SW_CMD_ADD:
		p = c->port;
		if (sw_find(sw, p->id, NULL) || sw_lookup(sw, p->guard.mac)) {
			c->rc = -EEXIST;
			break;
		}
		if (sw->nports == sw->cfg.max_ports) {
			c->rc = -ENOSPC;
			break;
		}
		ev.data.ptr = p;
		if (epoll_ctl(sw->epfd, EPOLL_CTL_ADD, p->fds[0], &ev) < 0) {
			c->rc = -errno;
			break;
		}
		rc = 0;
		for (idx = 0; idx < SW_UPLINKS && !rc; idx++)
			if (sw->slot[idx])
				rc = uplink_add_mac(sw->slot[idx], p->guard.mac);
		if (rc) {
			while (idx-- > 0)
				if (sw->slot[idx])
					uplink_del_mac(sw->slot[idx], p->guard.mac);
			epoll_ctl(sw->epfd, EPOLL_CTL_DEL, p->fds[0], NULL);
			c->rc = rc;
			break;
		}
		sw->ports[sw->nports++] = p;
		sw_mac_add(sw, p);
		p->sw = sw;
		p->armed = 0;
		p->live_at = 0;
		p->dirty = 0;
		sw_live_add(sw, p);	/* the first sleep arms it */
		sw_port_count(sw, p, 1);
		sw->src_e = NULL;	/* whose are the wire's sources? */
		sw->src_port = NULL;
		c->rc = 0;
		break;
	case SW_CMD_DEL:
		p = sw_find(sw, c->port_id, &idx);
		if (!p) {
			c->rc = -ENOENT;
			break;
		}
		if (p->dirty) {
			unsigned int i = p->dirty - 1;

			ring_flush(p->h2a);
			sw->dirtyl[i] = sw->dirtyl[--sw->ndirty];
			sw->dirtyl[i]->dirty = i + 1;
			p->dirty = 0;
		}
		sw_live_del(sw, p);
		sw_port_count(sw, p, -1);
		if (c->port_st)
			sw_port_fill_stats(p, c->port_st);
		if (!p->disconnected)
			epoll_ctl(sw->epfd, EPOLL_CTL_DEL, p->fds[0], NULL);
		for (unsigned int i = 0; i < SW_UPLINKS; i++)
			if (sw->slot[i])
				uplink_del_mac(sw->slot[i], p->guard.mac);
		sw_mac_del(sw, p);
		sw->src_e = NULL;	/* @src_port may be @p */
		sw->src_port = NULL;
		p->ncaps = 0;	/* its captures stay, idle, until deleted */
		sw->ports[idx] = sw->ports[--sw->nports];
		sw->ports[sw->nports] = NULL;
		c->port = p;
		c->rc = 0;
		break;
	case SW_CMD_POLICY:
		p = sw_find(sw, c->port_id, NULL);
		if (!p) {
			c->rc = -ENOENT;
			break;
		}
		if (!sw_mac_eq(p->guard.mac, c->pol->guard.mac)) {
			c->rc = sw_port_new_mac(sw, p, c->pol->guard.mac);
			if (c->rc)
				break;
		}
		sw_port_count(sw, p, -1);
		sw_port_apply_policy(p, c->pol, 0);
		sw_port_count(sw, p, 1);
		sw_live_add(sw, p);	/* no longer throttled: looked at again */
		c->rc = 0;
		break;
	case SW_CMD_PORT_STATS:
		p = sw_find(sw, c->port_id, NULL);
		if (!p) {
			c->rc = -ENOENT;
			break;
		}
		sw_port_fill_stats(p, c->port_st);
		c->rc = 0;
		break;
	case SW_CMD_ALL_STATS:
		c->n = sw->nports;
		for (unsigned int i = 0; i < sw->nports && i < c->max; i++) {
			c->ids[i] = sw->ports[i]->id;
			sw_port_fill_stats(sw->ports[i], &c->port_st[i]);
		}
		c->rc = 0;
		break;
	case SW_CMD_CAP_ADD:
		p = sw_find(sw, c->cap->port_id, NULL);
		if (!p) {
			c->rc = -ENOENT;
			break;
		}
		if (p->ncaps == SW_PORT_CAPTURES_MAX ||
		    sw->ncaps == SW_CAPTURES_MAX) {
			c->rc = -ENOSPC;
			break;
		}
		do	/* unique among live captures, never 0 */
			c->cap->id = ++sw->cap_id;
		while (!c->cap->id || sw_cap_find(sw, c->cap->id, NULL));
		p->caps[p->ncaps++] = c->cap;
		sw->caps[sw->ncaps++] = c->cap;
		c->rc = 0;
		break;
	case SW_CMD_CAP_DEL: {
		struct sw_cap *cap = sw_cap_find(sw, c->port_id, &idx);

		if (!cap) {
			c->rc = -ENOENT;
			break;
		}
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
		c->rc = 0;
		break;
	}
	case SW_CMD_REARM:
		for (unsigned int i = 0; i < sw->nports; i++)
			sw->ports[i]->noted = 0;
		c->rc = 0;
		break;
	case SW_CMD_TAP: {
		int old;

		p = sw_find(sw, c->port_id, NULL);
		if (!p) {
			c->rc = -ENOENT;
			break;
		}
		old = p->tap;
		p->tap = c->fd;
		c->fd = old;
		c->rc = 0;
		break;
	}
	case SW_CMD_FDB_FIND: {
		uint64_t now = util_now_ns();
		const struct fdb_entry *e = fdb_find(&sw->fdb, c->mac, -1, now);

		if (!e) {
			c->rc = -ENOENT;
			break;
		}
		fdb_describe(e, now, c->fdb);
		c->rc = 0;
		break;
	}
	case SW_CMD_FDB_DUMP:
		fdb_dump(&sw->fdb, util_now_ns(), c->fdb, c->max, &c->n);
		c->rc = 0;
		break;
	case SW_CMD_FDB_TABLE:
		c->n = sw_fdb_rows(sw, c->rows, c->max);
		c->rc = 0;
		break;
	case SW_CMD_UPLINK:
		c->rc = sw_uplink_swap(sw, c);
		break;
	case SW_CMD_MTU:
		__atomic_store_n(&sw->cfg.mtu, c->mtu, __ATOMIC_RELAXED);
		c->rc = 0;
		break;
	case SW_CMD_SELECT:
		if (c->slot != sw->active)
			sw->st.uplink_moves++;
		sw->active = c->slot;
		sw->up = c->slot < SW_UPLINKS ? sw->slot[c->slot] : NULL;
		sw->st.attached = !!sw->up;
		sw->st.active_slot = c->slot;
		c->rc = 0;
		break;
	case SW_CMD_UPLINK_STATS: {
		struct uplink_stats us = sw->up_gone, cur;
		struct fdb_stats fs;

		c->rc = 0;
		for (unsigned int i = 0; i < SW_UPLINKS && !c->rc; i++) {
			if (!sw->slot[i])
				continue;
			c->rc = uplink_get_stats(sw->slot[i], &cur);
			if (!c->rc)
				sw_uplink_stats_add(&us, &cur);
		}
		sw->st.attached = !!sw->up;
		sw->st.rx_drop_truncated = us.rx_truncated;
		sw->st.rx_drop_kernel = us.rx_kernel_drops;
		sw->st.tx_frames = us.tx_frames;
		sw->st.tx_bytes = us.tx_bytes;
		sw->st.tx_calls = us.tx_calls;
		sw->st.socket_errors = us.socket_errors;
		sw->st.ports = sw->nports;
		sw->st.rx_drop_h2a_full = 0;	/* every port's, wire or not */
		for (unsigned int i = 0; i < sw->nports; i++)
			sw->st.rx_drop_h2a_full += sw->ports[i]->st.drop_h2a_full;
		fdb_get_stats(&sw->fdb, util_now_ns(), &fs);
		sw->st.fdb_entries = fs.entries;
		sw->st.fdb_learned = fs.learned;
		sw->st.fdb_evicted = fs.evicted;
		*c->uplink_st = sw->st;
		break;
	}
	default:
		c->rc = -EINVAL;
	}
	c->done = 1;
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

/**
 * sw_exec() - have a command applied, synchronously
 * @sw:		switch
 * @c:		command
 *
 * By the data-plane thread if sw_run() is running, else right here under
 * @sw->lock (so sw_run() cannot start halfway). One command at a time.
 *
 * Return: @c->rc, or -errno from the eventfd write
 */
static int sw_exec(struct sw *sw, struct sw_cmd *c)
{
	uint64_t one = 1;

	pthread_mutex_lock(&sw->lock);
	while (sw->call_busy)
		pthread_cond_wait(&sw->cond, &sw->lock);
	if (!sw->running) {
		sw_apply(sw, c);
		pthread_mutex_unlock(&sw->lock);
		return c->rc;
	}
	sw->call_busy = 1;
	sw->cmd = c;
	__atomic_store_n(&sw->pending, 1, __ATOMIC_RELEASE);
	if (write(sw->ctl_efd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
		c->rc = -errno;
		sw->cmd = NULL;
		__atomic_store_n(&sw->pending, 0, __ATOMIC_RELEASE);
		c->done = 1;
	}
	while (!c->done)
		pthread_cond_wait(&sw->cond, &sw->lock);
	sw->call_busy = 0;
	pthread_cond_broadcast(&sw->cond);
	pthread_mutex_unlock(&sw->lock);
	return c->rc;
}

/**
 * sw_port_free() - unmap a port's rings and close its descriptors
 * @p:		port, not in any table; may be NULL
 */
static void sw_port_free(struct sw_port *p)
{
	if (!p)
		return;
	ring_detach(p->a2h);
	ring_detach(p->h2a);
	for (int i = 0; i < 4; i++)
		if (p->fds[i] >= 0)
			close(p->fds[i]);
	if (p->tap >= 0)
		close(p->tap);
	free(p);
}

/**
 * sw_port_add() - add a partition's port; returns once the switch uses it
 * @sw:		switch
 * @port_id:	the caller's id for the port, unique
 * @pol:	its policy (copied): @pol->guard.mac is the partition's MAC
 *		(unicast, unique among ports); buckets start full
 * @a2h:	the daemon's end of the A2H ring (the switch consumes): sealed
 *		memfd, data pipe read end, space pipe write end
 * @h2a:	the daemon's end of the H2A ring (the switch produces): sealed
 *		memfd, space pipe read end, data pipe write end
 * @ring_size:	data area size both rings must have (0: take the memfd's)
 *
 * The switch maps the rings and dup()s the pipe ends: the caller keeps its
 * descriptors and may close them at any time. The uplink gets a
 * PACKET_MR_UNICAST membership for @mac.
 *
 * Return: 0, -EINVAL (bad policy, as for sw_port_set_policy(), or
 * descriptors), -EEXIST (id or MAC in use by a port), -ENOSPC
 * (max_ports ports), or -errno from ring_attach()
 */
int sw_port_add(struct sw *sw, uint32_t port_id,
		const struct sw_port_policy *pol, const struct ring_end *a2h,
		const struct ring_end *h2a, uint64_t ring_size)
{
	struct sw_cmd c = { .op = SW_CMD_ADD, .port_id = port_id };
	struct ring_end mine[2];
	struct sw_port *p;
	int rc;

	if (!sw || !a2h || !h2a || sw_policy_check(pol))
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->id = port_id;
	sw_port_apply_policy(p, pol, 1);
	p->tap = -1;
	tbucket_init(&p->direct, sw->cfg.direct_pct * 10000000ull,
		     SW_DIRECT_BURST_NS, util_now_ns());
	for (int i = 0; i < 4; i++)
		p->fds[i] = -1;
	for (int i = 0; i < 4; i++) {
		const struct ring_end *e = i < 2 ? a2h : h2a;
		int src = i % 2 ? e->kick_fd : e->wait_fd;

		p->fds[i] = fcntl(src, F_DUPFD_CLOEXEC, 3);
		if (p->fds[i] < 0) {
			rc = -errno;
			goto fail;
		}
	}
	mine[0] = (struct ring_end){ a2h->memfd, p->fds[0], p->fds[1] };
	mine[1] = (struct ring_end){ h2a->memfd, p->fds[2], p->fds[3] };
	rc = ring_attach(&p->a2h, &mine[0], RING_CONSUMER, ring_size);
	if (rc)
		goto fail;
	rc = ring_attach(&p->h2a, &mine[1], RING_PRODUCER, ring_size);
	if (rc)
		goto fail;
	p->h2a_size = ring_data_size(p->h2a);
	c.port = p;
	rc = sw_exec(sw, &c);
	if (rc)
		goto fail;
	return 0;
fail:
	sw_port_free(p);
	return rc;
}

/**
 * sw_port_set_policy() - change a port's policy live; returns once applied
 * @sw:		switch
 * @port_id:	port id
 * @pol:	the new policy (copied); another @pol->guard.mac gives the port
 *		that MAC (sw_port_new_mac(): its MAC table entry and the
 *		uplink's membership follow)
 *
 * Applied by the data-plane thread between rounds: the guard's identity,
 * the VLAN (its flood domain moves with its next frame), storm control and
 * rate limits; token buckets keep their level, clamped to a new burst (a
 * limit set where there was none starts full; a limit lifted is gone at
 * once, and a throttled port is served again next round).
 *
 * Return: 0, -ENOENT (no such port), -EEXIST (a new MAC another port
 * has), -EINVAL (a group or zero MAC; a VLAN id past SW_VLAN_MAX; a rate or
 * storm limit without its burst)
 */
int sw_port_set_policy(struct sw *sw, uint32_t port_id,
		       const struct sw_port_policy *pol)
{
	struct sw_cmd c = { .op = SW_CMD_POLICY, .port_id = port_id,
			    .pol = pol };

	if (!sw || sw_policy_check(pol))
		return -EINVAL;
	return sw_exec(sw, &c);
}

/**
 * sw_port_set_tap() - give the switch a port's TAP, for direct delivery
 * @sw:		switch
 * @port_id:	port id
 * @tap_fd:	the partition's TAP (IFF_VNET_HDR, a 12-byte header, as the
 *		agent has it), or -1 to stop writing to it
 *
 * The switch dup()s @tap_fd (the caller keeps its own) and from the next
 * frame writes a frame for the port to it itself while the port's H2A
 * ring is empty and its share of the switch's time lasts (SW_DIRECT_*).
 * The write never waits: a TAP's send buffer has no limit, and any error
 * sends the frame through the ring instead.
 *
 * Return: 0, -ENOENT (no such port), -EINVAL, or -errno from dup()
 */
int sw_port_set_tap(struct sw *sw, uint32_t port_id, int tap_fd)
{
	struct sw_cmd c = { .op = SW_CMD_TAP, .port_id = port_id, .fd = -1 };
	int rc;

	if (!sw || tap_fd < -1)
		return -EINVAL;
	if (tap_fd >= 0) {
		c.fd = fcntl(tap_fd, F_DUPFD_CLOEXEC, 3);
		if (c.fd < 0)
			return -errno;
	}
	rc = sw_exec(sw, &c);
	if (c.fd >= 0)
		close(c.fd);	/* the old one, or the new one refused */
	return rc;
}

/**
 * sw_port_del() - remove a port; returns once the switch no longer uses it
 * @sw:		switch
 * @port_id:	port id
 * @final:	its last counters, out (may be NULL)
 *
 * Return: 0 or -ENOENT
 */
int sw_port_del(struct sw *sw, uint32_t port_id, struct sw_port_stats *final)
{
	struct sw_cmd c = { .op = SW_CMD_DEL, .port_id = port_id,
			    .port_st = final };
	int rc;

	if (!sw)
		return -EINVAL;
	rc = sw_exec(sw, &c);
	if (rc)
		return rc;
	sw_port_free(c.port);
	return 0;
}

/**
 * sw_port_stats() - a port's counters
 * @sw:		switch
 * @port_id:	port id
 * @st:		out
 *
 * Return: 0 or -ENOENT
 */
int sw_port_stats(struct sw *sw, uint32_t port_id, struct sw_port_stats *st)
{
	struct sw_cmd c = { .op = SW_CMD_PORT_STATS, .port_id = port_id,
			    .port_st = st };

	if (!sw || !st)
		return -EINVAL;
	return sw_exec(sw, &c);
}

/**
 * sw_uplink_stats() - wire-side and loop counters
 * @sw:		switch
 * @st:		out
 *
 * Return: 0 or -errno from PACKET_STATISTICS
 */
int sw_uplink_stats(struct sw *sw, struct sw_uplink_stats *st)
{
	struct sw_cmd c = { .op = SW_CMD_UPLINK_STATS, .uplink_st = st };

	if (!sw || !st)
		return -EINVAL;
	return sw_exec(sw, &c);
}

/**
 * sw_all_port_stats() - every port's counters, in one command
 * @sw:		switch
 * @ids:	port ids, out: an array of @max
 * @st:		their counters, out: an array of @max
 * @max:	entries of @ids and @st
 * @n:		ports there are, out; if more than @max, only @max were filled
 *
 * One snapshot, taken between two rounds: what a metrics scrape reads.
 *
 * Return: 0, or -EINVAL
 */
int sw_all_port_stats(struct sw *sw, uint32_t *ids, struct sw_port_stats *st,
		      unsigned int max, unsigned int *n)
{
	struct sw_cmd c = { .op = SW_CMD_ALL_STATS, .ids = ids, .port_st = st,
			    .max = max };
	int rc;

	if (!sw || !n || (max && (!ids || !st)))
		return -EINVAL;
	rc = sw_exec(sw, &c);
	*n = c.n;
	return rc;
}

/**
 * sw_cap_free() - unmap a capture's ring and close its descriptors
 * @c:		capture, in no table; may be NULL
 */
static void sw_cap_free(struct sw_cap *c)
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
	struct ring_end mine;
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
	cap->fds[0] = fcntl(ring->wait_fd, F_DUPFD_CLOEXEC, 3);
	cap->fds[1] = fcntl(ring->kick_fd, F_DUPFD_CLOEXEC, 3);
	if (cap->fds[0] < 0 || cap->fds[1] < 0) {
		rc = -errno;
		goto fail;
	}
	mine = (struct ring_end){ ring->memfd, cap->fds[0], cap->fds[1] };
	rc = ring_attach(&cap->ring, &mine, RING_PRODUCER, ring_size);
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

/**
 * sw_notify_fd() - the eventfd the switch writes on a port's first policy
 * drop, the start of its MAC conflict or its disconnection since
 * sw_notes_rearm() (nonblocking; read it to clear it)
 * @sw:		switch
 *
 * Return: the descriptor (the switch's; do not close it)
 */
int sw_notify_fd(struct sw *sw)
{
	return sw->note_efd;
}

/**
 * sw_notes_rearm() - let every port notify again
 * @sw:		switch
 *
 * Call it before reading the counters: a drop after it notifies anew.
 *
 * Return: 0
 */
int sw_notes_rearm(struct sw *sw)
{
	struct sw_cmd c = { .op = SW_CMD_REARM };

	if (!sw)
		return -EINVAL;
	return sw_exec(sw, &c);
}

/**
 * sw_drop_name() - the name of an enum sw_drop (switch.h)
 * @drop:	the value
 *
 * Return: a static string; "?" past SW_DROP__MAX
 */
const char *sw_drop_name(unsigned int drop)
{
	static const char *const names[SW_DROP_GUARD] = {
		[SW_DROP_NONE]		= "none",
		[SW_DROP_UPLINK_TX]	= "uplink_tx",
		[SW_DROP_H2A_FULL]	= "h2a_full",
		[SW_DROP_STORM]		= "storm",
		[SW_DROP_FLOOD_SHARE]	= "flood_share",
		[SW_DROP_RX_RATE]	= "rx_rate",
		[SW_DROP_OTHER_VLAN]	= "other_vlan",
		[SW_DROP_MAC_CONFLICT]	= "mac_conflict",
		[SW_DROP_NO_UPLINK]	= "no_uplink",
	};

	if (drop < SW_DROP_GUARD)
		return names[drop];
	if (drop < SW_DROP__MAX)
		return guard_verdict_name(drop - SW_DROP_GUARD);
	return "?";
}

/**
 * sw_mtu() - the MTU the switch enforces on partitions' non-GSO frames
 * @sw:		switch
 * @mtu:	out
 *
 * Return: 0
 */
int sw_mtu(struct sw *sw, uint32_t *mtu)
{
	*mtu = __atomic_load_n(&sw->cfg.mtu, __ATOMIC_RELAXED);
	return 0;
}

/**
 * sw_set_mtu() - change the MTU the guard holds partitions' frames to
 * @sw:		switch
 * @mtu:	largest L3 size of a non-GSO frame, 68 to RING_FRAME_MAX - 14
 *
 * Applied between rounds: the uplink's MTU changed (the daemon follows
 * it), and the next frame is checked against the new value.
 *
 * Return: 0 or -EINVAL
 */
int sw_set_mtu(struct sw *sw, uint32_t mtu)
{
	struct sw_cmd c = { .op = SW_CMD_MTU, .mtu = mtu };

	if (!sw || mtu < SW_MTU_MIN || mtu > RING_FRAME_MAX - RING_ETH_HLEN)
		return -EINVAL;
	return sw_exec(sw, &c);
}

/**
 * sw_uplink_attach() - serve the wire through a new socket on @ifindex
 * @sw:		switch
 * @slot:	0 (the primary NIC) or 1 (the backup, for failover)
 * @ifindex:	the NIC, in the calling thread's network namespace: the
 *		same one again, or another (the device re-created)
 *
 * The socket is opened (and its RX ring mapped) here, with the settings
 * of sw_create(); the data-plane thread then swaps it in between rounds
 * (sw_uplink_swap(): the ports' MAC memberships, the epoll set), and the
 * socket it had, if any, is closed here once it let go of it. Frames
 * the old socket's ring still held are lost with it.
 *
 * Return: 0, or -errno from uplink_open() (-ENODEV: no such device) or
 * from a membership (the switch keeps the uplink it had)
 */
int sw_uplink_attach(struct sw *sw, unsigned int slot, int ifindex)
{
	struct sw_cmd c = { .op = SW_CMD_UPLINK, .slot = slot };
	struct uplink *u;
	int rc;

	if (!sw || ifindex <= 0 || slot >= SW_UPLINKS)
		return -EINVAL;
	rc = uplink_open(&u, ifindex, &sw->cfg.uplink);
	if (rc)
		return rc;
	c.up = u;
	rc = sw_exec(sw, &c);
	uplink_close(c.up);	/* the old one, or the new one refused */
	return rc;
}

/**
 * sw_uplink_detach() - let go of the uplink in @slot: its NIC is gone
 * @sw:		switch
 * @slot:	0 or 1, as sw_uplink_attach()
 *
 * From the next round on, frames for the wire are dropped and counted
 * (drop_no_uplink, tx_drop_no_uplink) and the wire is not read, until
 * sw_uplink_attach(). The socket is closed once the switch let go of it.
 *
 * Return: 0 (also when there was none)
 */
int sw_uplink_detach(struct sw *sw, unsigned int slot)
{
	struct sw_cmd c = { .op = SW_CMD_UPLINK, .up = NULL, .slot = slot };
	int rc;

	if (!sw || slot >= SW_UPLINKS)
		return -EINVAL;
	rc = sw_exec(sw, &c);
	uplink_close(c.up);
	return rc;
}

/**
 * sw_uplink_select() - make the uplink in @slot the active one (failover)
 * @sw:		switch
 * @slot:	0 or 1, or SW_UPLINK_NONE: none (both NICs down)
 *
 * From the next round on the wire is read and written through @slot's
 * socket only; the other's frames are taken and counted
 * (rx_drop_inactive). With no socket in @slot, or SW_UPLINK_NONE, frames
 * for the wire are dropped as no_uplink. A move counts in uplink_moves.
 *
 * Return: 0 or -EINVAL
 */
int sw_uplink_select(struct sw *sw, unsigned int slot)
{
	struct sw_cmd c = { .op = SW_CMD_SELECT, .slot = slot };

	if (!sw || (slot >= SW_UPLINKS && slot != SW_UPLINK_NONE))
		return -EINVAL;
	return sw_exec(sw, &c);
}

/**
 * sw_fdb_find() - is a MAC a station's on the wire?
 * @sw:		switch
 * @mac:	six bytes
 * @out:	its live FDB entry (the most recently seen, of any VLAN), out
 *
 * Return: 0, -ENOENT (not learned, or aged out) or -EINVAL
 */
int sw_fdb_find(struct sw *sw, const uint8_t *mac, struct fdb_info *out)
{
	struct sw_cmd c = { .op = SW_CMD_FDB_FIND, .mac = mac, .fdb = out };

	if (!sw || !mac || !out)
		return -EINVAL;
	return sw_exec(sw, &c);
}

/**
 * sw_fdb_dump() - the stations learned on the wire, in one command
 * @sw:		switch
 * @out:	their entries, out: an array of @max
 * @max:	entries @out holds
 * @n:		live entries there are, out; if more than @max, only @max
 *		were written
 *
 * Return: 0 or -EINVAL
 */
int sw_fdb_dump(struct sw *sw, struct fdb_info *out, unsigned int max,
		unsigned int *n)
{
	struct sw_cmd c = { .op = SW_CMD_FDB_DUMP, .fdb = out, .max = max };
	int rc;

	if (!sw || !n || (max && !out))
		return -EINVAL;
	rc = sw_exec(sw, &c);
	*n = c.n;
	return rc;
}

/**
 * sw_fdb_table() - the switch's forwarding table, in one command
 * @sw:		switch
 * @out:	its rows, out: an array of @max; the ports' own MACs
 *		(SW_FDB_STATIC), then the stations learned on the wire
 *		(port SW_FDB_PORT_UPLINK, with their age)
 * @max:	rows @out holds
 * @n:		rows there are, out; if more than @max, only @max were written
 *
 * A control command, like the counters: the table is copied between two
 * rounds, so the forwarding path pays nothing for it.
 *
 * Return: 0 or -EINVAL
 */
int sw_fdb_table(struct sw *sw, struct sw_fdb_row *out, unsigned int max,
		 unsigned int *n)
{
	struct sw_cmd c = { .op = SW_CMD_FDB_TABLE, .rows = out, .max = max };
	int rc;

	if (!sw || !n || (max && !out))
		return -EINVAL;
	rc = sw_exec(sw, &c);
	*n = c.n;
	return rc;
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
	    sw->cfg.mac_conflict > SW_MAC_CONFLICT_KEEP) {
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
