// SPDX-License-Identifier: MIT
/* switch_int.h - the switch's private header: its structs and the inlines
 * its files share
 *
 * The switch is four files, one per mechanism, over this header:
 *   switch.c         the hot path: create and run, the round and its sleep,
 *                    wire -> ports, ports -> anywhere, delivery, direct
 *                    writes (everything a frame passes through, in one
 *                    translation unit, so gcc inlines it)
 *   switch_mac.c     the port table by MAC (add, delete; the lookup the
 *                    frames use is sw_lookup(), inline here)
 *   switch_capture.c capture: add, delete, the copy of a port's frames
 *                    (the hook the hot path calls is sw_tap(), inline here)
 *   switch_ctl.c     the control side: the command queue (one function per
 *                    operation), the port API, policy, stats, notes, the
 *                    uplink slots, the forwarding table's export
 * switch.h is the public API (and what cffi sees); nothing here is.
 * The Theory of operation is atop switch.c.
 */
#ifndef VNETSHARE_SWITCH_INT_H
#define VNETSHARE_SWITCH_INT_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "fdb.h"
#include "guard.h"
#include "mcast.h"
#include "switch.h"
#include "tbucket.h"
#include "util.h"
#define SW_EV_CTL	0ull	/* epoll data of the control eventfd */
#define SW_EV_UPLINK	1ull	/* epoll data of slot 0's uplink socket; slot i: +i */
#define SW_EV_LAST	(SW_EV_UPLINK + SW_UPLINKS - 1)
/* epoll data of a port's A2H data pipe: the struct sw_port pointer */
#define SW_EVENTS	64
#define SW_ETH_P_8021Q	0x8100u
#define SW_ETH_P_IP	0x0800u
#define SW_ETH_P_IPV6	0x86ddu
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
	SW_CMD_MCAST,
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
 * @mrows:	SW_CMD_MCAST: an array of @max memberships, out (@n written)
 * @qrows:	SW_CMD_MCAST: an array of @qmax queriers, out (@nq written)
 * @qmax:	their number
 * @nq:		queriers written, out
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
	struct mcast_row *mrows;
	struct mcast_querier_row *qrows;
	unsigned int qmax;
	unsigned int nq;
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
 * @mc:		the multicast group table (mcast.h), NULL with snooping off
 * @hdr_long:	the longer private copy of a frame the guard reads further
 *		(a DHCP message, sw_guard_long()): one frame at a time
 * @mc_copy:	a partition's IGMP/MLD message, copied whole for snooping
 *		(sw_mcast()): one frame at a time
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
	struct mcast *mc;
	uint8_t hdr_long[GUARD_HDR_COPY_MAX];
	uint8_t mc_copy[GUARD_HDR_COPY_MAX];
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
 * sw_mac_is_ipmc() - is a destination MAC an IP multicast one?
 * @mac:	the MAC
 *
 * IPv4's 01:00:5e with the 24th bit clear, IPv6's 33:33 (RFC 1112,
 * RFC 2464); broadcast is neither.
 *
 * Return: non-zero if it is
 */
static inline int sw_mac_is_ipmc(const uint8_t *mac)
{
	return (mac[0] == 0x01 && mac[1] == 0x00 && mac[2] == 0x5e &&
		!(mac[3] & 0x80)) || (mac[0] == 0x33 && mac[1] == 0x33);
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
static inline struct sw_port *sw_lookup(const struct sw *sw, const uint8_t *mac)
{
	for (uint32_t i = sw_mac_slot(sw, mac);; i = (i + 1) & sw->mac_mask) {
		struct sw_port *p = sw->macs[i];

		if (!p || sw_mac_eq(p->guard.mac, mac))
			return p;
	}
}
/* switch_mac.c */
void sw_mac_add(struct sw *sw, struct sw_port *p);
void sw_mac_del(struct sw *sw, struct sw_port *p);

/* switch_capture.c */
__attribute__((noinline, cold)) void
sw_cap_copy(struct sw_port *p, unsigned int dir, unsigned int drop,
	    const uint8_t *head, uint32_t head_len, const uint8_t *tail,
	    uint32_t tail_len);
void sw_cap_free(struct sw_cap *c);
int sw_cmd_cap_add(struct sw *sw, struct sw_cmd *c);
int sw_cmd_cap_del(struct sw *sw, struct sw_cmd *c);

/* switch_ctl.c */
struct sw_port *sw_find(const struct sw *sw, uint32_t id, unsigned int *idx);
void sw_apply(struct sw *sw, struct sw_cmd *c);
void sw_port_free(struct sw_port *p);
int sw_ring_take(struct ring **out, int fds[2], const struct ring_end *end,
		 int role, uint64_t ring_size);
int sw_exec(struct sw *sw, struct sw_cmd *c);

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
 * sw_live_add() - a port may have work: rounds serve it
 * @sw:		switch
 * @p:		port
 */
static inline void sw_live_add(struct sw *sw, struct sw_port *p)
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
static inline void sw_live_del(struct sw *sw, struct sw_port *p)
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
static inline void sw_port_count(struct sw *sw, struct sw_port *p, int delta)
{
	sw->vlan_ports[p->vlan] += (uint32_t)delta;
	if (p->guard.flags & GUARD_F_TRUSTED_ROUTER)
		sw->nrouters += (unsigned int)delta;
}
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
static inline int sw_in_conflict(struct sw *sw, struct sw_port *p, uint64_t now)
{
	if (now <= p->conflict_ns || now - p->conflict_ns < sw->fdb.age_ns)
		return 1;
	p->conflict_ns = 0;
	return 0;
}

#endif /* VNETSHARE_SWITCH_INT_H */
