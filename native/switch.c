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
 *      Destination MAC of a partition: one copy into its H2A ring (the
 *      10-byte vnet header becomes the 12-byte one). Broadcast/multicast:
 *      a copy into every port's H2A ring. Other unicast: dropped, counted.
 *
 *   2. ports -> anywhere, round robin (the first port moves each round),
 *      each port at most @burst_frames frames / @burst_bytes bytes (rule 6):
 *        ring_peek()                         rules 1-4, in ring.c
 *        guard_check_tx(), in guard.c:
 *          l2 source MAC != port MAC -> drop rule 5 (anti-spoofing)
 *          VLAN tag, non-GSO over MTU -> drop
 *          destination the port's own MAC -> drop (a loop)
 *        destination:
 *          another port's MAC  -> one copy, A2H record -> its H2A record
 *          broadcast/multicast -> a copy to every other port + the wire
 *          anything else       -> the wire, sendmmsg() with the iovec
 *                                 [private vnet, private l2, ring memory]
 *        uplink_tx_flush(), then one ring_release() for the burst: the wire
 *        has the data before the partition may reuse the space
 *      A port whose ring violations reach @violation_limit is disconnected
 *      (rule 7): it is neither served nor delivered to any more, and its
 *      counters say so.
 *
 *   3. ring_flush() every H2A ring that got records (one kick at most per
 *      ring per round, and only if its agent sleeps).
 *
 *   4. Frames moved: the next round at once, or, while frames come
 *      densely, after a nap of the coalescing window, so one wakeup takes
 *      a batch (coalesce.h, like a NIC's adaptive interrupt moderation).
 *
 *   5. Nothing moved: ring_arm() every A2H ring, then epoll_wait() on the
 *      A2H data pipes, the uplink socket and the control eventfd. An
 *      idle switch costs no CPU. ring_arm() re-checks after setting the
 *      waiting flag, so a record published meanwhile is never slept on.
 *
 * H2A full never blocks: the frame is dropped and counted. The uplink
 * never blocks: a refused frame is dropped and counted.
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
#include <unistd.h>

#include "coalesce.h"
#include "guard.h"
#include "switch.h"
#include "util.h"

#define SW_EV_CTL	0ull	/* epoll data of the control eventfd */
#define SW_EV_UPLINK	1ull	/* epoll data of the uplink socket */
#define SW_EV_PORT	2ull	/* epoll data of any A2H data pipe */
#define SW_EVENTS	64

enum sw_cmd_op {
	SW_CMD_ADD = 1,
	SW_CMD_DEL,
	SW_CMD_PORT_STATS,
	SW_CMD_UPLINK_STATS,
};

/**
 * struct sw_port - one partition's port
 * @id:		the caller's port id
 * @guard:	what the guard checks its frames against: its MAC, the only
 *		source MAC it may send from (guard.h)
 * @a2h:	A2H ring, consumer side
 * @h2a:	H2A ring, producer side
 * @fds:	our dup()s of the rings' pipe ends (a2h wait, a2h kick, h2a
 *		wait, h2a kick): the rings use them, the caller's may close
 * @dirty:	records committed to @h2a this round, not flushed yet
 * @armed:	@a2h is armed for this sleep
 * @disconnected: rule 7 tripped: neither served nor delivered to
 * @st:		counters (ring counters are folded in when read)
 */
struct sw_port {
	uint32_t id;
	struct guard_port guard;
	struct ring *a2h;
	struct ring *h2a;
	int fds[4];
	int dirty;
	int armed;
	int disconnected;
	struct sw_port_stats st;
};

/**
 * struct sw_cmd - one control request, applied by the data-plane thread
 * @op:		enum sw_cmd_op
 * @port_id:	port concerned
 * @port:	SW_CMD_ADD: the prepared port; SW_CMD_DEL: the removed one, out
 * @port_st:	stats out (SW_CMD_PORT_STATS, SW_CMD_DEL)
 * @uplink_st:	stats out (SW_CMD_UPLINK_STATS)
 * @rc:		0 or -errno, out
 * @done:	set when applied
 */
struct sw_cmd {
	int op;
	uint32_t port_id;
	struct sw_port *port;
	struct sw_port_stats *port_st;
	struct sw_uplink_stats *uplink_st;
	int rc;
	int done;
};

/**
 * struct sw - the switch
 * @up:		the uplink
 * @cfg:	settings, defaults applied
 * @ports:	active ports, compact (order is only the round-robin order)
 * @nports:	entries in @ports
 * @rr:		round-robin start
 * @epfd:	epoll of A2H data pipes, uplink socket, control eventfd
 * @ctl_efd:	control eventfd (commands and stop)
 * @stop:	sw_stop() was called; sticky
 * @pending:	a command waits in @cmd
 * @running:	sw_run() is in its loop (under @lock)
 * @lock:	protects @cmd, @running, @call_busy
 * @cond:	signals a command done, or the call slot free
 * @call_busy:	a caller owns the command slot
 * @cmd:	the command being applied
 * @coalesce_usecs: coalescing window (coalesce.h), 0 for off
 * @st:		wire-side and loop counters
 */
struct sw {
	struct uplink *up;
	struct sw_config cfg;
	struct sw_port *ports[SW_PORTS_MAX];
	unsigned int nports;
	unsigned int rr;
	int epfd;
	int ctl_efd;
	int stop;
	int pending;
	int running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int call_busy;
	struct sw_cmd *cmd;
	unsigned int coalesce_usecs;
	struct sw_uplink_stats st;
};

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
 * sw_lookup() - the port whose MAC is @mac
 * @sw:		switch
 * @mac:	destination MAC
 *
 * Return: the port, or NULL
 */
static struct sw_port *sw_lookup(const struct sw *sw, const uint8_t *mac)
{
	for (unsigned int i = 0; i < sw->nports; i++)
		if (sw_mac_eq(sw->ports[i]->guard.mac, mac))
			return sw->ports[i];
	return NULL;
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

/* Data path ------------------------------------------------------------------ */

/**
 * sw_deliver() - copy one frame into a port's H2A ring
 * @q:		destination port
 * @vnet:	vnet header (12 bytes; num_buffers is written as 0)
 * @vnet_len:	bytes of @vnet to take: 12 from a ring, 10 from the wire
 * @l2:		Ethernet header to write (a private, validated copy)
 * @frame:	the frame; bytes 14.. are copied from here
 * @len:	frame length
 *
 * One copy. A full ring drops the frame (counted on @q): never block.
 */
static void sw_deliver(struct sw_port *q, const void *vnet,
		       unsigned int vnet_len, const uint8_t *l2,
		       const uint8_t *frame, uint32_t len)
{
	uint32_t plen = RING_VNET_HDR_LEN + len;
	struct ring_vnet_hdr *vh;
	uint8_t *p;

	if (unlikely(q->disconnected))
		return;
	if (unlikely(plen > RING_LEN_MAX ||
		     ring_reserve(q->h2a, plen, &p) < 0)) {
		q->st.drop_h2a_full++;
		return;
	}
	vh = (struct ring_vnet_hdr *)p;
	memcpy(vh, vnet, vnet_len);
	vh->num_buffers = 0;
	memcpy(p + RING_VNET_HDR_LEN, l2, RING_ETH_HLEN);
	memcpy(p + RING_VNET_HDR_LEN + RING_ETH_HLEN, frame + RING_ETH_HLEN,
	       len - RING_ETH_HLEN);
	ring_commit(q->h2a, plen);
	q->st.rx_frames++;
	q->st.rx_bytes += len;
	q->dirty = 1;
}

/**
 * sw_uplink_rx() - wire -> ports, one burst
 * @sw:		switch
 *
 * Return: frames taken from the wire
 */
static unsigned int sw_uplink_rx(struct sw *sw)
{
	struct uplink_frame f;
	unsigned int n = 0;
	struct sw_port *q;

	while (n < sw->cfg.uplink_burst && !uplink_rx_next(sw->up, &f)) {
		n++;
		sw->st.rx_frames++;
		sw->st.rx_bytes += f.len;
		if (unlikely(f.vlan_valid)) {
			sw->st.rx_drop_vlan++;
			continue;
		}
		if (sw_mac_is_group(f.mac)) {
			for (unsigned int i = 0; i < sw->nports; i++) {
				q = sw->ports[i];
				if (q->disconnected)
					continue;
				sw_deliver(q, f.vnet, UPLINK_VNET_HDR_LEN,
					   f.mac, f.mac, f.len);
				sw->st.rx_delivered++;
			}
			continue;
		}
		q = sw_lookup(sw, f.mac);
		if (!q || q->disconnected) {
			sw->st.rx_drop_unknown++;
			continue;
		}
		sw_deliver(q, f.vnet, UPLINK_VNET_HDR_LEN, f.mac, f.mac,
			   f.len);
		sw->st.rx_delivered++;
	}
	uplink_rx_release(sw->up);
	return n;
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
		epoll_ctl(sw->epfd, EPOLL_CTL_DEL, p->fds[0], NULL);
	}
}

/**
 * sw_port_tx() - one port's A2H burst, switched
 * @sw:		switch
 * @p:		source port
 *
 * guard_check_tx() gives each frame's verdict (rule 5, VLAN, MTU, the
 * destination class); a drop is counted under the verdict's counter.
 *
 * Return: frames taken from the ring (dropped ones included)
 */
static unsigned int sw_port_tx(struct sw *sw, struct sw_port *p)
{
	struct uplink_tx_result res;
	uint32_t bytes = 0;
	unsigned int n = 0, wire = 0;
	enum guard_verdict v;
	struct ring_rec rec;
	struct sw_port *q;

	while (n < sw->cfg.burst_frames && bytes < sw->cfg.burst_bytes &&
	       !ring_peek(p->a2h, &rec)) {
		n++;
		bytes += rec.frame_len;
		v = guard_check_tx(&p->guard, &rec, sw->cfg.mtu);
		switch (v) {
		case GUARD_PASS_GROUP:
			p->st.tx_frames++;
			p->st.tx_bytes += rec.frame_len;
			for (unsigned int i = 0; i < sw->nports; i++) {
				q = sw->ports[i];
				if (q != p)
					sw_deliver(q, &rec.vnet,
						   RING_VNET_HDR_LEN, rec.l2,
						   rec.frame, rec.frame_len);
			}
			break;
		case GUARD_PASS_UNICAST:
			p->st.tx_frames++;
			p->st.tx_bytes += rec.frame_len;
			q = sw_lookup(sw, rec.l2);
			if (q) {	/* never p: that is GUARD_DROP_LOOP */
				sw_deliver(q, &rec.vnet, RING_VNET_HDR_LEN,
					   rec.l2, rec.frame, rec.frame_len);
				continue;
			}
			break;
		default:	/* every drop verdict: counted under its own */
			p->st.guard_drops[v < GUARD__MAX ? v : GUARD_DROP_LOOP]++;
			continue;
		}
		uplink_tx_queue(sw->up, &rec.vnet, rec.l2, rec.frame,
				rec.frame_len);
		wire++;
	}
	if (wire) {
		/* the wire has every byte before the partition gets the space */
		uplink_tx_flush(sw->up, &res);
		p->st.tx_to_wire += wire;
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
 * sw_flush_h2a() - publish every H2A ring that got records this round
 * @sw:		switch
 */
static void sw_flush_h2a(struct sw *sw)
{
	for (unsigned int i = 0; i < sw->nports; i++) {
		struct sw_port *q = sw->ports[i];

		if (q->dirty)
			ring_flush(q->h2a);
		q->dirty = 0;
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
	unsigned int work, n = sw->nports;

	sw->st.rounds++;
	work = sw_uplink_rx(sw);
	if (n) {
		unsigned int start = sw->rr++ % n;

		for (unsigned int k = 0; k < n; k++) {
			struct sw_port *p = sw->ports[(start + k) % n];

			if (!p->disconnected)
				work += sw_port_tx(sw, p);
		}
	}
	sw_flush_h2a(sw);
	return work;
}

/**
 * sw_disarm_all() - undo ring_arm() on every armed port
 * @sw:		switch
 */
static void sw_disarm_all(struct sw *sw)
{
	for (unsigned int i = 0; i < sw->nports; i++) {
		struct sw_port *p = sw->ports[i];

		if (p->armed)
			ring_disarm(p->a2h);
		p->armed = 0;
	}
}

/**
 * sw_sleep() - arm every A2H ring and sleep until something happens
 * @sw:		switch
 *
 * Return: 0, or -errno from epoll_wait()
 */
static int sw_sleep(struct sw *sw)
{
	struct epoll_event ev[SW_EVENTS];
	uint64_t v;
	int n, err;

	for (unsigned int i = 0; i < sw->nports; i++) {
		struct sw_port *p = sw->ports[i];

		if (p->disconnected)
			continue;
		if (ring_arm(p->a2h, 0)) {	/* work already: don't sleep */
			sw_disarm_all(sw);
			return 0;
		}
		p->armed = 1;
	}
	if (__atomic_load_n(&sw->stop, __ATOMIC_ACQUIRE) ||
	    __atomic_load_n(&sw->pending, __ATOMIC_ACQUIRE)) {
		sw_disarm_all(sw);
		return 0;
	}
	sw->st.sleeps++;
	n = epoll_wait(sw->epfd, ev, SW_EVENTS, -1);
	err = errno;	/* before ring_disarm()'s read() of the pipes */
	sw_disarm_all(sw);
	if (n < 0)
		return err == EINTR ? 0 : -err;
	for (int i = 0; i < n; i++) {
		if (ev[i].data.u64 == SW_EV_CTL)
			while (read(sw->ctl_efd, &v, sizeof(v)) < 0 &&
			       errno == EINTR)
				;
		/* link down or gone: read the error, or POLLERR stays up */
		if (ev[i].data.u64 == SW_EV_UPLINK &&
		    (ev[i].events & EPOLLERR))
			uplink_clear_error(sw->up, &err);
	}
	return 0;
}

/* Control -------------------------------------------------------------------- */

/**
 * sw_port_fill_stats() - a port's counters with its ring counters folded in
 * @p:		port
 * @st:		out
 */
static void sw_port_fill_stats(const struct sw_port *p, struct sw_port_stats *st)
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
}

/**
 * sw_apply() - carry out a command; the caller holds @sw->lock and is
 * the data-plane thread, or sw_run() is not running
 * @sw:		switch
 * @c:		command; @c->rc is set
 */
static void sw_apply(struct sw *sw, struct sw_cmd *c)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = SW_EV_PORT };
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
		if (sw->nports == SW_PORTS_MAX) {
			c->rc = -ENOSPC;
			break;
		}
		if (epoll_ctl(sw->epfd, EPOLL_CTL_ADD, p->fds[0], &ev) < 0) {
			c->rc = -errno;
			break;
		}
		rc = uplink_add_mac(sw->up, p->guard.mac);
		if (rc) {
			epoll_ctl(sw->epfd, EPOLL_CTL_DEL, p->fds[0], NULL);
			c->rc = rc;
			break;
		}
		sw->ports[sw->nports++] = p;
		c->rc = 0;
		break;
	case SW_CMD_DEL:
		p = sw_find(sw, c->port_id, &idx);
		if (!p) {
			c->rc = -ENOENT;
			break;
		}
		if (p->dirty)
			ring_flush(p->h2a);
		if (c->port_st)
			sw_port_fill_stats(p, c->port_st);
		if (!p->disconnected)
			epoll_ctl(sw->epfd, EPOLL_CTL_DEL, p->fds[0], NULL);
		uplink_del_mac(sw->up, p->guard.mac);
		sw->ports[idx] = sw->ports[--sw->nports];
		sw->ports[sw->nports] = NULL;
		c->port = p;
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
	case SW_CMD_UPLINK_STATS: {
		struct uplink_stats us;

		c->rc = uplink_get_stats(sw->up, &us);
		sw->st.rx_drop_truncated = us.rx_truncated;
		sw->st.rx_drop_kernel = us.rx_kernel_drops;
		sw->st.tx_frames = us.tx_frames;
		sw->st.tx_bytes = us.tx_bytes;
		sw->st.tx_calls = us.tx_calls;
		sw->st.socket_errors = us.socket_errors;
		sw->st.ports = sw->nports;
		sw->st.rx_drop_h2a_full = 0;
		for (unsigned int i = 0; i < sw->nports; i++)
			sw->st.rx_drop_h2a_full += sw->ports[i]->st.drop_h2a_full;
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
	free(p);
}

/**
 * sw_port_add() - add a partition's port; returns once the switch uses it
 * @sw:		switch
 * @port_id:	the caller's id for the port, unique
 * @mac:	the partition's MAC (unicast, unique among ports)
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
 * Return: 0, -EINVAL (bad MAC or descriptors), -EEXIST (id or MAC in use),
 * -ENOSPC (SW_PORTS_MAX ports), or -errno from ring_attach()
 */
int sw_port_add(struct sw *sw, uint32_t port_id, const uint8_t *mac,
		const struct ring_end *a2h, const struct ring_end *h2a,
		uint64_t ring_size)
{
	struct sw_cmd c = { .op = SW_CMD_ADD, .port_id = port_id };
	struct ring_end mine[2];
	struct sw_port *p;
	int rc;

	if (!sw || !mac || !a2h || !h2a || sw_mac_is_group(mac) ||
	    !memcmp(mac, "\0\0\0\0\0\0", 6))
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->id = port_id;
	memcpy(p->guard.mac, mac, 6);
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
 * sw_mtu() - the MTU the switch enforces on partitions' non-GSO frames
 * @sw:		switch
 * @mtu:	out
 *
 * Return: 0
 */
int sw_mtu(struct sw *sw, uint32_t *mtu)
{
	*mtu = sw->cfg.mtu;
	return 0;
}

/* Life cycle ----------------------------------------------------------------- */

/**
 * sw_create() - open the uplink and make an empty switch
 * @out:	new switch, out
 * @uplink_ifindex: the NIC, in the calling thread's network namespace
 * @cfg:	settings, or NULL for defaults
 *
 * Return: 0 or -errno (from uplink_open(), epoll, eventfd; -EINVAL for a
 * bad setting)
 */
int sw_create(struct sw **out, int uplink_ifindex, const struct sw_config *cfg)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct sw *sw;
	int rc;

	if (!out)
		return -EINVAL;
	sw = calloc(1, sizeof(*sw));
	if (!sw)
		return -ENOMEM;
	sw->epfd = -1;
	sw->ctl_efd = -1;
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
	pthread_mutex_init(&sw->lock, NULL);
	pthread_cond_init(&sw->cond, NULL);

	rc = uplink_open(&sw->up, uplink_ifindex, &sw->cfg.uplink);
	if (rc)
		goto fail;
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
	if (sw->epfd < 0 || sw->ctl_efd < 0) {
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
	uplink_close(sw->up);
	if (sw->epfd >= 0)
		close(sw->epfd);
	if (sw->ctl_efd >= 0)
		close(sw->ctl_efd);
	pthread_cond_destroy(&sw->cond);
	pthread_mutex_destroy(&sw->lock);
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
			continue;
		}
		coalesce_round(&co, 0);
		coalesce_sleeping(&co);
		rc = sw_sleep(sw);
		if (unlikely(rc))
			break;
		coalesce_woken(&co);
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
