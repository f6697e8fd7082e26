/* SPDX-License-Identifier: MIT */
/* switch.h - the hosting daemon's data plane: partitions' rings <-> uplink
 *
 * The patent's I/O hosting interface. One thread runs sw_run(); the control
 * thread adds and removes ports, swaps the uplink's socket and reads
 * counters through calls that are applied by that thread between bursts
 * (see "Theory of operation" in switch.c). Every function returns 0 or
 * -errno; none allocates once sw_run() forwards frames, none exits.
 */
#ifndef VNETSHARE_SWITCH_H
#define VNETSHARE_SWITCH_H

#include <stdint.h>

#include "cbpf.h"
#include "fdb.h"
#include "guard.h"
#include "mcast.h"
#include "ring.h"
#include "tbucket.h"
#include "uplink.h"

/* cdef: begin */
#define SW_PORTS_DEFAULT	4096u		/* ports one switch serves at most */
#define SW_PORTS_LIMIT		65536u		/* the most sw_config.max_ports may be */
#define SW_BURST_FRAMES_DEFAULT	64u		/* per port per round (rule 6) */
#define SW_BURST_BYTES_DEFAULT	(1u << 20)	/* per port per round (rule 6) */
#define SW_UPLINK_BURST_DEFAULT	64u		/* frames from the wire per round */
#define SW_VIOLATION_LIMIT_DEFAULT 64u		/* ring violations, then disconnect */
#define SW_VIOLATION_NEVER	0xffffffffu	/* never disconnect */
#define SW_VLAN_MAX		4094u		/* access VLAN ids: 1 to this */
#define SW_CAPTURES_MAX		64u		/* captures at once, whole switch */
#define SW_PORT_CAPTURES_MAX	4u		/* captures at once on one port */
#define SW_MTU_MIN		68u		/* sw_set_mtu(): IPv4's least */
#define SW_UPLINKS		2u		/* uplink slots: 0 primary, 1 backup */
#define SW_UPLINK_NONE		SW_UPLINKS	/* sw_uplink_select(): neither */

/*
 * Flood share: a flooded copy (broadcast, multicast) goes into a port's H2A
 * ring only while that ring is at most SW_FLOOD_SHARE_NUM/_DEN full; past
 * it the copy is skipped (drop_flood_share on that port), so the rest of
 * the ring stays for the port's own unicast, whatever a neighbour floods.
 */
#define SW_FLOOD_SHARE_NUM	1u
#define SW_FLOOD_SHARE_DEN	2u

/*
 * Direct delivery (sw_port_set_tap()): a frame for a port whose H2A ring is
 * empty is written to the port's TAP by the switch itself, one hop and one
 * copy fewer than through the ring and the agent. That write runs the
 * partition's receive path (its netfilter, its sockets) on the switch's
 * thread, so each port gets a share of the switch's time for it: a token
 * bucket of nanoseconds, SW_DIRECT_SHARE_PCT percent of one core with
 * SW_DIRECT_BURST_NS of burst, and all ports together
 * SW_DIRECT_TOTAL_PCT. Past its share a port's frames go through its
 * ring and its agent, on the agent's own time, as before.
 */
#define SW_DIRECT_SHARE_PCT	25u	/* default of sw_config.direct_pct */
#define SW_DIRECT_TOTAL_PCT	50u	/* all ports (at least one port's) */
#define SW_DIRECT_BURST_NS	1000000u

/*
 * MAC conflicts (sw_config.mac_conflict): a partition's MAC seen as the
 * source of a frame from the wire means a station on the LAN has it too.
 * The port counts it (mac_conflicts) and is in conflict (mac_conflict)
 * until no such frame came for the FDB's ageing time. Meanwhile, with
 * SW_MAC_CONFLICT_YIELD (the default) the LAN's station keeps its MAC, as
 * a learning switch would have it: unicast for that MAC from the wire is
 * not delivered to the port (drop_mac_conflict) and from other ports goes
 * to the wire; broadcasts still reach the port. SW_MAC_CONFLICT_KEEP
 * delivers to the port as before, and only counts.
 */
#define SW_MAC_CONFLICT_YIELD	0u
#define SW_MAC_CONFLICT_KEEP	1u

struct sw;

/*
 * Capture (sw_capture_add()): what a capture of a port takes, its flags.
 * SW_CAP_RX and SW_CAP_TX are the partition's view (RX: frames put into
 * its H2A ring; TX: frames it sent that the switch forwarded). With
 * SW_CAP_DROPS the capture takes only the frames the switch dropped for
 * the port instead, each with its reason (enum sw_drop).
 */
#define SW_CAP_RX	1u
#define SW_CAP_TX	2u
#define SW_CAP_DROPS	4u

/**
 * enum sw_drop - why the switch dropped a frame of a port, as a capture
 * record says (struct sw_cap_hdr.drop); the names (sw_drop_name()) are
 * the drop reasons of struct sw_port_stats as vnetshare.counters shows
 * them: a field drop_X is "X", a guard verdict its guard_verdict_name()
 * without "drop_"
 * @SW_DROP_NONE:	forwarded, not dropped
 * @SW_DROP_UPLINK_TX:	the uplink refused it when it was queued
 * @SW_DROP_H2A_FULL:	the port's H2A ring was full
 * @SW_DROP_STORM:	over the port's storm limit
 * @SW_DROP_FLOOD_SHARE: a flood copy over the port's flood share
 * @SW_DROP_RX_RATE:	over the port's receive rate limit
 * @SW_DROP_OTHER_VLAN:	unicast to a port of another VLAN
 * @SW_DROP_MAC_CONFLICT: for its MAC from the wire while a station there
 *		has that MAC (SW_MAC_CONFLICT_YIELD)
 * @SW_DROP_NO_UPLINK:	for the wire while the switch has no uplink
 *		(the NIC gone: sw_uplink_detach())
 * @SW_DROP_GUARD:	the guard's verdict v is SW_DROP_GUARD + v
 */
enum sw_drop {
	SW_DROP_NONE,
	SW_DROP_UPLINK_TX,
	SW_DROP_H2A_FULL,
	SW_DROP_STORM,
	SW_DROP_FLOOD_SHARE,
	SW_DROP_RX_RATE,
	SW_DROP_OTHER_VLAN,
	SW_DROP_MAC_CONFLICT,
	SW_DROP_NO_UPLINK,
	SW_DROP_GUARD,
	SW_DROP__MAX = SW_DROP_GUARD + GUARD__MAX
};

/**
 * struct sw_cap_hdr - what precedes each frame in a capture ring record
 * @time_ns:	when the switch copied it, CLOCK_REALTIME, ns
 * @orig_len:	the frame's whole length (the record holds at most snaplen
 *		bytes of it, after this header)
 * @dir:	SW_CAP_RX or SW_CAP_TX
 * @drop:	enum sw_drop: SW_DROP_NONE for a forwarded frame
 *
 * A capture record is a ring record (ring.h) whose vnet header is zero
 * and whose "frame" is this header and then the captured bytes.
 */
struct sw_cap_hdr {
	uint64_t time_ns;
	uint32_t orig_len;
	uint16_t dir;
	uint16_t drop;
};

/**
 * struct sw_capture_stats - counters of one capture
 * @frames:	records written into its ring
 * @bytes:	the captured frames' whole lengths
 * @lost:	frames not captured: its ring was full (a slow reader)
 * @filtered:	frames its filter refused (not copied)
 */
struct sw_capture_stats {
	uint64_t frames;
	uint64_t bytes;
	uint64_t lost;
	uint64_t filtered;
};

/**
 * struct sw_rate - a rate limit, token buckets in bits and in packets
 * @bits_per_sec: bit rate (frame bytes * 8), 0 for no bit limit
 * @bits_burst:	bits a full bucket holds; > 0 when @bits_per_sec is
 * @pkts_per_sec: packet rate, 0 for no packet limit
 * @pkts_burst:	packets a full bucket holds; > 0 when @pkts_per_sec is
 *
 * A frame passes while neither bucket is empty and is charged its whole
 * size (tbucket.h, rule 4); a GSO frame as the segments it becomes: one
 * packet each, and the headers each of them repeats (struct guard_frame).
 */
struct sw_rate {
	uint64_t bits_per_sec;
	uint64_t bits_burst;
	uint64_t pkts_per_sec;
	uint64_t pkts_burst;
};

#define SW_FDB_STATIC		1u		/* a port's own MAC */
#define SW_FDB_PORT_UPLINK	0xffffffffu	/* a row's port: the wire */

/**
 * struct sw_fdb_row - one row of the forwarding table (sw_fdb_table())
 * @mac:	the address
 * @vlan:	its VLAN: 0 untagged, else the VLAN id
 * @port_id:	the port it is forwarded to, or SW_FDB_PORT_UPLINK
 * @flags:	SW_FDB_STATIC: a port's own MAC (it never ages); 0: a
 *		station learned on the wire
 * @age_ns:	a learned station: how long ago it was last seen; 0 if static
 */
struct sw_fdb_row {
	uint8_t mac[6];
	uint16_t vlan;
	uint32_t port_id;
	uint32_t flags;
	uint64_t age_ns;
};

/**
 * struct sw_port_policy - what a port may do: identity, VLAN, fair share
 * @guard:	its identity for the guard (guard.h): MAC, addresses, flags;
 *		@guard.mac is the port's MAC (unicast, not zero)
 * @vlan:	0: untagged; 1 to SW_VLAN_MAX: an access port of that VLAN
 *		(its frames leave tagged, it floods and switches only within
 *		the VLAN)
 * @storm_pps:	broadcast and multicast frames per second it may send, 0 for
 *		no limit
 * @storm_burst: frames of such a burst; > 0 when @storm_pps is
 * @tx:		what it may send: over the budget a frame waits in its A2H ring
 * @rx:		what it may receive: over the budget a frame is dropped
 */
struct sw_port_policy {
	struct guard_port guard;
	uint16_t vlan;
	uint32_t storm_pps;
	uint32_t storm_burst;
	struct sw_rate tx;
	struct sw_rate rx;
};

/**
 * struct sw_config - data-plane settings; zero fields take defaults
 * @burst_frames: most A2H frames taken from one port per round
 * @burst_bytes: most A2H frame bytes taken from one port per round
 *		(a burst stops once it reached this; one frame may cross it)
 * @uplink_burst: most frames taken from the wire per round
 * @mtu:	largest L3 size of a non-GSO frame from a partition
 *		(frame length - 14); 0: the uplink's MTU at sw_create();
 *		sw_set_mtu() changes it
 * @violation_limit: ring violations (rules 1-4) after which a port is
 *		disconnected (rule 7); SW_VIOLATION_NEVER to never
 * @max_ports:	ports it serves at most (SW_PORTS_DEFAULT; at most
 *		SW_PORTS_LIMIT): its tables are made this big at sw_create(),
 *		16 bytes a port, so adding a port never allocates in the loop
 * @direct_pct: percent of one core each port's direct writes may take
 *		(SW_DIRECT_SHARE_PCT; at most 100); all ports together take
 *		SW_DIRECT_TOTAL_PCT or this, the larger. Direct delivery is on
 *		for ports given a TAP (sw_port_set_tap()) only.
 * @fdb_size:	stations learned on the wire it keeps (fdb.h:
 *		FDB_SIZE_DEFAULT; a power of two), 16 bytes each, allocated
 *		at sw_create()
 * @fdb_age_s:	seconds after which a station not seen again is forgotten,
 *		and a port's MAC conflict ends (FDB_AGE_DEFAULT_S)
 * @mac_conflict: SW_MAC_CONFLICT_YIELD (0, default) or SW_MAC_CONFLICT_KEEP
 * @mcast_off:	1: no IGMP/MLD snooping, every group frame floods as
 *		before (0, default: snooping, mcast.h)
 * @uplink:	AF_PACKET socket settings (TPACKET version, ring sizes)
 */
struct sw_config {
	uint32_t burst_frames;
	uint32_t burst_bytes;
	uint32_t uplink_burst;
	uint32_t mtu;
	uint32_t violation_limit;
	uint32_t max_ports;
	uint32_t direct_pct;
	uint32_t fdb_size;
	uint32_t fdb_age_s;
	uint32_t mac_conflict;
	uint32_t mcast_off;
	struct uplink_config uplink;
};

/**
 * struct sw_port_stats - counters of one port, as the partition sees them
 *
 * A GSO frame counts as the segments it becomes (frames) and their bytes
 * (struct guard_frame): the frames and bytes the wire carries for it.
 *
 * @tx_frames:	frames the partition sent that the switch forwarded (to
 *		ports, the wire or both; uplink refusals included)
 * @tx_bytes:	their bytes
 * @rx_frames:	frames delivered to the partition: into its H2A ring, or
 *		written straight to its TAP (@rx_direct)
 * @rx_bytes:	their bytes
 * @rx_direct:	frames of @rx_frames the switch wrote to the partition's
 *		TAP itself (sw_port_set_tap()): its H2A ring was empty and
 *		the port had switch time left (SW_DIRECT_SHARE)
 * @tx_to_wire:	frames (of @tx_frames) handed to the uplink
 * @violations:	ring violations on its A2H ring (sum of @ring_drops; the
 *		port is disconnected past the limit, rule 7)
 * @ring_skipped_bytes: A2H bytes skipped after untrustworthy headers
 * @disconnected: 1 once the port was disconnected for violations (rule 7)
 * @drop_uplink_tx: frames the uplink refused (ENOBUFS, EAGAIN, ...)
 * @drop_h2a_full: frames for this partition dropped: its H2A ring was full
 * @drop_storm:	broadcast/multicast frames it sent over its storm limit
 * @drop_flood_share: flooded copies for it skipped: its H2A ring was more
 *		than SW_FLOOD_SHARE full
 * @drop_rx_rate: frames for it dropped over its receive rate limit
 * @drop_other_vlan: unicast frames it sent to a port of another VLAN
 * @tx_throttled: times its transmit stopped at its rate limit (its frames
 *		waited in its A2H ring; not a drop)
 * @a2h_used:	bytes now in its A2H ring (published, not yet taken): a
 *		gauge
 * @h2a_used:	bytes now in its H2A ring (not yet taken by the agent): a
 *		gauge
 * @ring_bytes:	data size of each of its rings
 * @captures:	captures running on it now
 * @mac_conflicts: frames from the wire whose source was its MAC: a station
 *		on the LAN has it too (see SW_MAC_CONFLICT_*)
 * @mac_conflict: 1 while in conflict (such a frame came within the FDB's
 *		ageing time): a gauge
 * @drop_mac_conflict: frames for its MAC from the wire not delivered to it
 *		while in conflict (SW_MAC_CONFLICT_YIELD)
 * @drop_no_uplink: frames (or a flood's wire copy) for the wire while the
 *		switch had no uplink: the NIC was gone (sw_uplink_detach())
 * @guard_drops: frames the guard dropped, by enum guard_verdict (guard.h);
 *		the PASS entries stay 0. EMSGSIZE from the uplink counts
 *		under GUARD_DROP_MTU.
 * @ring_drops:	ring violations by enum ring_drop reason (ring_get_stats())
 *
 * Every front end (vnetshare.counters) shows a field named drop_X, and
 * each array entry, as a drop reason: a new counter is one line here.
 */
struct sw_port_stats {
	uint64_t tx_frames;
	uint64_t tx_bytes;
	uint64_t rx_frames;
	uint64_t rx_bytes;
	uint64_t rx_direct;
	uint64_t tx_to_wire;
	uint64_t violations;
	uint64_t ring_skipped_bytes;
	uint64_t disconnected;
	uint64_t drop_uplink_tx;
	uint64_t drop_h2a_full;
	uint64_t drop_storm;
	uint64_t drop_flood_share;
	uint64_t drop_rx_rate;
	uint64_t drop_other_vlan;
	uint64_t tx_throttled;
	uint64_t a2h_used;
	uint64_t h2a_used;
	uint64_t ring_bytes;
	uint64_t captures;
	uint64_t mac_conflicts;
	uint64_t mac_conflict;
	uint64_t drop_mac_conflict;
	uint64_t drop_no_uplink;
	uint64_t guard_drops[GUARD__MAX];
	uint64_t ring_drops[RING_DROP__MAX];
};

/**
 * struct sw_uplink_stats - counters of the wire side and the loop
 * @rx_frames:	frames received from the wire (whole ones)
 * @rx_bytes:	their bytes
 * @rx_delivered: deliveries into partitions' H2A rings (a broadcast
 *		counts once per partition)
 * @rx_drop_unknown: unicast frames for no partition's MAC
 * @rx_drop_vlan: frames tagged with a VLAN no port has
 * @rx_drop_other_vlan: unicast frames for a port of another VLAN than the
 *		frame's (untagged for an access port, or tagged for another)
 * @rx_drop_truncated: frames larger than an RX ring slot
 * @rx_drop_kernel: frames the kernel dropped, RX ring full
 * @rx_drop_h2a_full: deliveries dropped, the partition's H2A ring full
 * @tx_frames:	frames sent to the wire
 * @tx_bytes:	their bytes
 * @tx_drop_msgsize: frames refused with EMSGSIZE
 * @tx_drop_errors: frames refused otherwise
 * @tx_drop_no_uplink: frames for the wire while the switch had no uplink
 *		(sw_uplink_detach(): the NIC gone), dropped
 * @tx_calls:	sendmmsg() calls
 * @socket_errors: errors the uplink socket reported (link down or gone)
 * @attached:	1 while the switch has a socket on the uplink, 0 after
 *		sw_uplink_detach() until the next sw_uplink_attach(): a gauge
 * @rebinds:	sockets swapped in by sw_uplink_attach() since sw_create()
 *		(a slot's first socket, the backup's at start, is none)
 * @rx_drop_inactive: frames from the inactive uplink (the backup while the
 *		primary serves, or the other way round), not delivered
 * @active_slot: the active uplink slot (0, 1, or SW_UPLINK_NONE): a gauge
 * @uplink_moves: times sw_uplink_select() moved to another slot
 * @rounds:	forwarding rounds
 * @sleeps:	times the loop slept in epoll_wait()
 * @commands:	control commands applied
 * @ports:	ports now
 * @naps:	coalescing naps taken between busy rounds (coalesce.h)
 * @polls:	polls for an answer before sleeping, after a lone frame or
 *		a few (coalesce.h)
 * @poll_hits:	those that found the answer (frames from another input
 *		than the one polled after), so the switch did not sleep
 * @flood_scoped: flood copies not made, from the wire or a partition: a
 *		group frame only routers or its address's owner need
 *		(guard_group_scope()) and this port is neither
 * @fdb_entries: stations learned on the wire and not aged out (a gauge)
 * @fdb_learned: stations learned (new, or back after they aged out)
 * @fdb_evicted: live stations forgotten for want of room in the table
 * @mcast_reports: IGMP/MLD reports and leaves snooped, from the wire or a
 *		partition
 * @mcast_queries: IGMP/MLD queries seen
 * @mcast_scoped: copies of group frames not made thanks to snooping (the
 *		ports of the VLAN that did not join the group)
 * @mcast_groups: groups with a member now, all VLANs (a gauge)
 * @mcast_full:	joins the group table had no room for (their groups flood)
 */
struct sw_uplink_stats {
	uint64_t rx_frames;
	uint64_t rx_bytes;
	uint64_t rx_delivered;
	uint64_t rx_drop_unknown;
	uint64_t rx_drop_vlan;
	uint64_t rx_drop_other_vlan;
	uint64_t rx_drop_truncated;
	uint64_t rx_drop_kernel;
	uint64_t rx_drop_h2a_full;
	uint64_t tx_frames;
	uint64_t tx_bytes;
	uint64_t tx_drop_msgsize;
	uint64_t tx_drop_errors;
	uint64_t tx_drop_no_uplink;
	uint64_t tx_calls;
	uint64_t socket_errors;
	uint64_t attached;
	uint64_t rebinds;
	uint64_t rx_drop_inactive;
	uint64_t active_slot;
	uint64_t uplink_moves;
	uint64_t rounds;
	uint64_t sleeps;
	uint64_t commands;
	uint64_t ports;
	uint64_t naps;
	uint64_t flood_scoped;
	uint64_t polls;
	uint64_t poll_hits;
	uint64_t fdb_entries;
	uint64_t fdb_learned;
	uint64_t fdb_evicted;
	uint64_t mcast_reports;
	uint64_t mcast_queries;
	uint64_t mcast_scoped;
	uint64_t mcast_groups;
	uint64_t mcast_full;
};

int sw_create(struct sw **out, int uplink_ifindex, const struct sw_config *cfg);
void sw_destroy(struct sw *sw);
int sw_set_coalesce(struct sw *sw, unsigned int usecs);
int sw_run(struct sw *sw);
int sw_stop(struct sw *sw);
int sw_port_add(struct sw *sw, uint32_t port_id,
		const struct sw_port_policy *pol, const struct ring_end *a2h,
		const struct ring_end *h2a, uint64_t ring_size);
int sw_port_set_policy(struct sw *sw, uint32_t port_id,
		       const struct sw_port_policy *pol);
int sw_port_set_tap(struct sw *sw, uint32_t port_id, int tap_fd);
int sw_port_del(struct sw *sw, uint32_t port_id, struct sw_port_stats *final);
int sw_port_stats(struct sw *sw, uint32_t port_id, struct sw_port_stats *st);
int sw_all_port_stats(struct sw *sw, uint32_t *ids, struct sw_port_stats *st,
		      unsigned int max, unsigned int *n);
int sw_uplink_stats(struct sw *sw, struct sw_uplink_stats *st);
int sw_capture_add(struct sw *sw, uint32_t port_id, uint32_t flags,
		   uint32_t snaplen, const struct cbpf_insn *filter,
		   uint32_t filter_len, const struct ring_end *ring,
		   uint64_t ring_size, uint32_t *cap_id);
int sw_capture_del(struct sw *sw, uint32_t cap_id,
		   struct sw_capture_stats *final);
const char *sw_drop_name(unsigned int drop);
int sw_notify_fd(struct sw *sw);
int sw_notes_rearm(struct sw *sw);
int sw_mtu(struct sw *sw, uint32_t *mtu);
int sw_set_mtu(struct sw *sw, uint32_t mtu);
int sw_uplink_attach(struct sw *sw, unsigned int slot, int ifindex);
int sw_uplink_detach(struct sw *sw, unsigned int slot);
int sw_uplink_select(struct sw *sw, unsigned int slot);
int sw_fdb_table(struct sw *sw, struct sw_fdb_row *out, unsigned int max,
		 unsigned int *n);
int sw_fdb_find(struct sw *sw, const uint8_t *mac, struct fdb_info *out);
int sw_fdb_dump(struct sw *sw, struct fdb_info *out, unsigned int max,
		unsigned int *n);
int sw_mcast_table(struct sw *sw, struct mcast_row *rows, unsigned int max,
		   unsigned int *n, struct mcast_querier_row *qrows,
		   unsigned int qmax, unsigned int *nq);
/* cdef: end */

#endif /* VNETSHARE_SWITCH_H */
