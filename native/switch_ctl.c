// SPDX-License-Identifier: MIT
/* switch_ctl.c - the switch's control side
 *
 * The command queue (sw_exec() posts, the data-plane thread applies between
 * rounds: sw_apply()), the port API, policy, stats, notes, the uplink slots,
 * MTU and the forwarding table's export. The Control paragraph of the
 * Theory of operation atop switch.c says how a command crosses threads.
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
 * sw_find() - the active port with id @id
 * @sw:		switch
 * @id:		port id
 * @idx:	its index in @sw->ports, out (may be NULL)
 *
 * Return: the port, or NULL
 */
struct sw_port *sw_find(const struct sw *sw, uint32_t id,
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
 * sw_cmd_add() - SW_CMD_ADD: put a prepared port into the tables
 * @sw:		switch
 * @c:		command: @c->port, the port
 *
 * Return: 0, -EEXIST (its id or MAC is a port's), -ENOSPC, or -errno
 * from epoll_ctl() or an uplink's membership (nothing is left half-made)
 */
static int sw_cmd_add(struct sw *sw, struct sw_cmd *c)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct sw_port *p = c->port;
	unsigned int idx;
	int rc;

	if (sw_find(sw, p->id, NULL) || sw_lookup(sw, p->guard.mac))
		return -EEXIST;
	if (sw->nports == sw->cfg.max_ports)
		return -ENOSPC;
	ev.data.ptr = p;
	if (epoll_ctl(sw->epfd, EPOLL_CTL_ADD, p->fds[0], &ev) < 0)
		return -errno;
	rc = 0;
	for (idx = 0; idx < SW_UPLINKS && !rc; idx++)
		if (sw->slot[idx])
			rc = uplink_add_mac(sw->slot[idx], p->guard.mac);
	if (rc) {
		while (idx-- > 0)
			if (sw->slot[idx])
				uplink_del_mac(sw->slot[idx], p->guard.mac);
		epoll_ctl(sw->epfd, EPOLL_CTL_DEL, p->fds[0], NULL);
		return rc;
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
	return 0;
}

/**
 * sw_cmd_del() - SW_CMD_DEL: take port @c->port_id out of every table
 * @sw:		switch
 * @c:		command: @c->port_id; out, @c->port (the caller frees it) and
 *		its last counters in @c->port_st (may be NULL)
 *
 * Return: 0 or -ENOENT
 */
static int sw_cmd_del(struct sw *sw, struct sw_cmd *c)
{
	unsigned int idx;
	struct sw_port *p = sw_find(sw, c->port_id, &idx);

	if (!p)
		return -ENOENT;
	if (p->dirty) {
		unsigned int i = p->dirty - 1;

		ring_flush(p->h2a);
		sw->dirtyl[i] = sw->dirtyl[--sw->ndirty];
		sw->dirtyl[i]->dirty = i + 1;
		p->dirty = 0;
	}
	sw_live_del(sw, p);
	sw_port_count(sw, p, -1);
	if (sw->mc)
		mcast_port_gone(sw->mc, p);
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
	return 0;
}

/**
 * sw_cmd_policy() - SW_CMD_POLICY: give port @c->port_id policy @c->pol
 * @sw:		switch
 * @c:		command: @c->port_id, @c->pol (checked)
 *
 * Return: 0, -ENOENT, or what sw_port_new_mac() returns
 */
static int sw_cmd_policy(struct sw *sw, struct sw_cmd *c)
{
	struct sw_port *p = sw_find(sw, c->port_id, NULL);
	int rc;

	if (!p)
		return -ENOENT;
	if (!sw_mac_eq(p->guard.mac, c->pol->guard.mac)) {
		rc = sw_port_new_mac(sw, p, c->pol->guard.mac);
		if (rc)
			return rc;
	}
	/* its groups were of its VLAN; a querier heard there was a router */
	if (sw->mc && (p->vlan != c->pol->vlan ||
		       ((p->guard.flags ^ c->pol->guard.flags) &
			GUARD_F_TRUSTED_ROUTER)))
		mcast_port_gone(sw->mc, p);
	sw_port_count(sw, p, -1);
	sw_port_apply_policy(p, c->pol, 0);
	sw_port_count(sw, p, 1);
	sw_live_add(sw, p);	/* no longer throttled: looked at again */
	return 0;
}

/**
 * sw_cmd_port_stats() - SW_CMD_PORT_STATS: port @c->port_id's counters
 * @sw:		switch
 * @c:		command: @c->port_id; out, @c->port_st
 *
 * Return: 0 or -ENOENT
 */
static int sw_cmd_port_stats(struct sw *sw, struct sw_cmd *c)
{
	struct sw_port *p = sw_find(sw, c->port_id, NULL);

	if (!p)
		return -ENOENT;
	sw_port_fill_stats(p, c->port_st);
	return 0;
}

/**
 * sw_cmd_all_stats() - SW_CMD_ALL_STATS: every port's id and counters
 * @sw:		switch
 * @c:		command: @c->max; out, @c->ids, @c->port_st (@c->max entries
 *		at most) and @c->n, the ports there are
 *
 * Return: 0
 */
static int sw_cmd_all_stats(struct sw *sw, struct sw_cmd *c)
{
	c->n = sw->nports;
	for (unsigned int i = 0; i < sw->nports && i < c->max; i++) {
		c->ids[i] = sw->ports[i]->id;
		sw_port_fill_stats(sw->ports[i], &c->port_st[i]);
	}
	return 0;
}

/**
 * sw_cmd_rearm() - SW_CMD_REARM: let every port notify again
 * @sw:		switch
 * @c:		command, no argument
 *
 * Return: 0
 */
static int sw_cmd_rearm(struct sw *sw, struct sw_cmd *c)
{
	(void)c;
	for (unsigned int i = 0; i < sw->nports; i++)
		sw->ports[i]->noted = 0;
	return 0;
}

/**
 * sw_cmd_tap() - SW_CMD_TAP: give port @c->port_id TAP @c->fd
 * @sw:		switch
 * @c:		command: @c->port_id, @c->fd (-1: none); out, @c->fd, its
 *		old one, for the caller to close
 *
 * Return: 0 or -ENOENT
 */
static int sw_cmd_tap(struct sw *sw, struct sw_cmd *c)
{
	struct sw_port *p = sw_find(sw, c->port_id, NULL);
	int old;

	if (!p)
		return -ENOENT;
	old = p->tap;
	p->tap = c->fd;
	c->fd = old;
	return 0;
}

/**
 * sw_cmd_fdb_find() - SW_CMD_FDB_FIND: the FDB entry of @c->mac, any VLAN
 * @sw:		switch
 * @c:		command: @c->mac; out, @c->fdb
 *
 * Return: 0 or -ENOENT
 */
static int sw_cmd_fdb_find(struct sw *sw, struct sw_cmd *c)
{
	uint64_t now = util_now_ns();
	const struct fdb_entry *e = fdb_find(&sw->fdb, c->mac, -1, now);

	if (!e)
		return -ENOENT;
	fdb_describe(e, now, c->fdb);
	return 0;
}

/**
 * sw_cmd_fdb_dump() - SW_CMD_FDB_DUMP: the FDB's entries
 * @sw:		switch
 * @c:		command: @c->max; out, @c->fdb (@c->max entries at most)
 *		and @c->n, the entries there are
 *
 * Return: 0
 */
static int sw_cmd_fdb_dump(struct sw *sw, struct sw_cmd *c)
{
	fdb_dump(&sw->fdb, util_now_ns(), c->fdb, c->max, &c->n);
	return 0;
}

/**
 * sw_cmd_fdb_table() - SW_CMD_FDB_TABLE: the forwarding table's rows
 * @sw:		switch
 * @c:		command: @c->max; out, @c->rows (@c->max at most) and @c->n,
 *		the rows there are
 *
 * Return: 0
 */
static int sw_cmd_fdb_table(struct sw *sw, struct sw_cmd *c)
{
	c->n = sw_fdb_rows(sw, c->rows, c->max);
	return 0;
}

/**
 * sw_cmd_mtu() - SW_CMD_MTU: the guard's MTU becomes @c->mtu
 * @sw:		switch
 * @c:		command: @c->mtu, checked
 *
 * Return: 0
 */
static int sw_cmd_mtu(struct sw *sw, struct sw_cmd *c)
{
	__atomic_store_n(&sw->cfg.mtu, c->mtu, __ATOMIC_RELAXED);
	return 0;
}

/**
 * sw_cmd_select() - SW_CMD_SELECT: make slot @c->slot the active uplink
 * @sw:		switch
 * @c:		command: @c->slot, or SW_UPLINK_NONE
 *
 * Return: 0
 */
static int sw_cmd_select(struct sw *sw, struct sw_cmd *c)
{
	if (c->slot != sw->active)
		sw->st.uplink_moves++;
	sw->active = c->slot;
	sw->up = c->slot < SW_UPLINKS ? sw->slot[c->slot] : NULL;
	sw->st.attached = !!sw->up;
	sw->st.active_slot = c->slot;
	return 0;
}

/**
 * sw_cmd_uplink_stats() - SW_CMD_UPLINK_STATS: the wire side's counters,
 * every uplink's (those let go of too) summed
 * @sw:		switch
 * @c:		command; out, @c->uplink_st
 *
 * Return: 0, or -errno from uplink_get_stats() (@c->uplink_st is filled
 * all the same)
 */
static int sw_cmd_uplink_stats(struct sw *sw, struct sw_cmd *c)
{
	struct uplink_stats us = sw->up_gone, cur;
	struct fdb_stats fs;
	int rc = 0;

	for (unsigned int i = 0; i < SW_UPLINKS && !rc; i++) {
		if (!sw->slot[i])
			continue;
		rc = uplink_get_stats(sw->slot[i], &cur);
		if (!rc)
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
	sw->st.mcast_groups = sw->mc ? mcast_groups(sw->mc) : 0;
	sw->st.mcast_full = sw->mc ? mcast_full(sw->mc) : 0;
	*c->uplink_st = sw->st;
	return rc;
}

/**
 * sw_cmd_mcast() - SW_CMD_MCAST: the group table's memberships and queriers
 * @sw:		switch
 * @c:		command: @c->mrows (@c->max of them), @c->qrows (@c->qmax);
 *		out, @c->n and @c->nq, the rows written
 *
 * Return: 0, or -EOPNOTSUPP with snooping off
 */
static int sw_cmd_mcast(struct sw *sw, struct sw_cmd *c)
{
	uint64_t now = util_now_ns();

	if (!sw->mc)
		return -EOPNOTSUPP;
	c->n = mcast_dump(sw->mc, now, c->mrows, c->max);
	c->nq = mcast_queriers(sw->mc, now, c->qrows, c->qmax);
	return 0;
}

/* the operations, by enum sw_cmd_op */
static int (*const sw_cmds[])(struct sw *sw, struct sw_cmd *c) = {
	[SW_CMD_ADD] = sw_cmd_add,
	[SW_CMD_DEL] = sw_cmd_del,
	[SW_CMD_PORT_STATS] = sw_cmd_port_stats,
	[SW_CMD_UPLINK_STATS] = sw_cmd_uplink_stats,
	[SW_CMD_POLICY] = sw_cmd_policy,
	[SW_CMD_ALL_STATS] = sw_cmd_all_stats,
	[SW_CMD_CAP_ADD] = sw_cmd_cap_add,
	[SW_CMD_CAP_DEL] = sw_cmd_cap_del,
	[SW_CMD_REARM] = sw_cmd_rearm,
	[SW_CMD_TAP] = sw_cmd_tap,
	[SW_CMD_FDB_FIND] = sw_cmd_fdb_find,
	[SW_CMD_FDB_DUMP] = sw_cmd_fdb_dump,
	[SW_CMD_FDB_TABLE] = sw_cmd_fdb_table,
	[SW_CMD_UPLINK] = sw_uplink_swap,
	[SW_CMD_MTU] = sw_cmd_mtu,
	[SW_CMD_SELECT] = sw_cmd_select,
	[SW_CMD_MCAST] = sw_cmd_mcast,
};

/**
 * sw_apply() - carry out a command; the caller holds @sw->lock and is
 * the data-plane thread, or sw_run() is not running
 * @sw:		switch
 * @c:		command; @c->rc is set
 *
 * One function per operation (sw_cmds[]; the capture's are in
 * switch_capture.c).
 */
void sw_apply(struct sw *sw, struct sw_cmd *c)
{
	sw->st.commands++;
	if (c->op > 0 && (size_t)c->op < sizeof(sw_cmds) / sizeof(sw_cmds[0]) &&
	    sw_cmds[c->op])
		c->rc = sw_cmds[c->op](sw, c);
	else
		c->rc = -EINVAL;
	c->done = 1;
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
int sw_exec(struct sw *sw, struct sw_cmd *c)
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
 * sw_ring_take() - dup a ring end's pipe ends, then attach the ring with them
 * @out:	the new handle, out (left NULL on failure)
 * @fds:	the two dups, out: [0] of @end->wait_fd, [1] of @end->kick_fd
 *		(both left -1 on failure); closed by whoever frees the owner
 * @end:	the caller's end of the ring: the caller keeps its descriptors
 *		and may close them at any time (the mapping keeps the memfd's
 *		memory)
 * @role:	RING_PRODUCER or RING_CONSUMER
 * @ring_size:	data area size the ring must have (0: take the memfd's)
 *
 * The one way a port (sw_port_add()) and a capture (sw_capture_add())
 * take hold of a ring; on failure it undoes its own steps, so nothing it
 * made is left open.
 *
 * Return: 0, or -errno from fcntl() or ring_attach()
 */
int sw_ring_take(struct ring **out, int fds[2], const struct ring_end *end,
		 int role, uint64_t ring_size)
{
	struct ring_end mine;
	int rc;

	*out = NULL;
	fds[0] = fcntl(end->wait_fd, F_DUPFD_CLOEXEC, 3);
	if (fds[0] < 0)
		return -errno;
	fds[1] = fcntl(end->kick_fd, F_DUPFD_CLOEXEC, 3);
	if (fds[1] < 0) {
		rc = -errno;
		goto undo;
	}
	mine = (struct ring_end){ end->memfd, fds[0], fds[1] };
	rc = ring_attach(out, &mine, role, ring_size);
	if (!rc)
		return 0;
	*out = NULL;
	close(fds[1]);
undo:
	close(fds[0]);
	fds[0] = fds[1] = -1;
	return rc;
}

/**
 * sw_port_free() - unmap a port's rings and close its descriptors
 * @p:		port, not in any table; may be NULL
 */
void sw_port_free(struct sw_port *p)
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
	rc = sw_ring_take(&p->a2h, &p->fds[0], a2h, RING_CONSUMER, ring_size);
	if (rc)
		goto fail;
	rc = sw_ring_take(&p->h2a, &p->fds[2], h2a, RING_PRODUCER, ring_size);
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

/**
 * sw_mcast_table() - the multicast group table, in one command
 * @sw:		switch
 * @rows:	memberships, out: an array of @max (mcast_dump(): aged first)
 * @max:	rows @rows holds
 * @n:		rows written, out
 * @qrows:	the queriers heard, out: an array of @qmax
 * @qmax:	rows @qrows holds
 * @nq:		rows written, out
 *
 * Copied between two rounds, like the forwarding table.
 *
 * Return: 0, -EINVAL, or -EOPNOTSUPP (snooping off: sw_config.mcast_off)
 */
int sw_mcast_table(struct sw *sw, struct mcast_row *rows, unsigned int max,
		   unsigned int *n, struct mcast_querier_row *qrows,
		   unsigned int qmax, unsigned int *nq)
{
	struct sw_cmd c = { .op = SW_CMD_MCAST, .mrows = rows, .max = max,
			    .qrows = qrows, .qmax = qmax };
	int rc;

	if (!sw || !n || !nq || (max && !rows) || (qmax && !qrows))
		return -EINVAL;
	rc = sw_exec(sw, &c);
	*n = c.n;
	*nq = c.nq;
	return rc;
}
