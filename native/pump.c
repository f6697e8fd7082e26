// SPDX-License-Identifier: MIT
/* pump.c - the partition agent's loop: frames between a TAP and two rings
 *
 * One round:
 *  1. TAP -> A2H: ring_read_fd() reads up to @burst frames straight into
 *     reserved records, then one ring_flush() publishes them (and writes the
 *     daemon's data pipe only if the daemon sleeps). When A2H is full the
 *     pump stops reading the TAP until the daemon makes room; with the
 *     byte limit on (pump_set_a2h_limit(), dql.h) it stops as soon as A2H
 *     holds the limit, and the TAP's own short queue holds the rest.
 *  2. H2A -> TAP: up to @burst records are ring_peek()ed and writev()n with
 *     the validated private vnet header; one ring_release() per burst. A
 *     write that says EAGAIN keeps its record ("held") and is retried when
 *     the TAP polls writable; nothing is released past a held record.
 *  3. Frames moved: go on at once, or, when frames come densely, nap for
 *     the coalescing window first so the next round takes a batch
 *     (coalesce.h: adaptive, like a NIC's interrupt moderation).
 *  4. No work in either direction: if what moved since the pump woke was
 *     a lone frame or two out of the TAP (a ping, a request: a round trip
 *     in flight) and nothing came in, poll for the answer first
 *     (coalesce_poll_ns(): bounded, yielding, rarer after misses), armed
 *     as below but with a zero timeout; then, or at once otherwise, arm
 *     and sleep in poll() on
 *       - the TAP, POLLIN (unless A2H is full or at the limit) and POLLOUT
 *         (if a record is held)
 *       - the H2A data pipe, after ring_arm() said there is nothing
 *       - the A2H space pipe, only while A2H is full (ring_arm()) or at
 *         the limit (ring_arm_below())
 *       - the stop eventfd.
 *     ring_arm() sets the waiting flag and re-checks the peer's position
 *     after a full fence, so a frame published meanwhile is never missed.
 *
 * Counters are written by the pump thread only, with relaxed atomic stores,
 * and read by any thread with relaxed atomic loads (pump_get_stats()).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "coalesce.h"
#include "dql.h"
#include "pump.h"
#include "util.h"


/* Single writer: a relaxed load-add-store is enough, and readers see whole values. */
#define PUMP_STAT_ADD(p, field, v) \
	__atomic_store_n(&(p)->stats.field, (p)->stats.field + (v), __ATOMIC_RELAXED)

/**
 * struct pump - one agent's loop state
 * @tap:	TAP descriptor (non-blocking, vnet_hdr 12)
 * @a2h:	producer handle of the A2H ring
 * @h2a:	consumer handle of the H2A ring
 * @stop_efd:	eventfd pump_stop() writes
 * @stop:	set by pump_stop(), read by the loop
 * @burst:	frames per direction per round
 * @release_bytes: H2A bytes written after which a burst releases them
 *		(a quarter of the ring): the switch refills behind the writes
 *		instead of waiting for a burst of 64 KiB records to end
 * @a2h_full:	A2H had no room for a largest record: TAP reads paused
 * @limit_on:	the byte limit is on (pump_set_a2h_limit())
 * @limited:	the last read stopped at the limit: TAP reads paused until
 *		A2H holds less, and the first look at A2H after the switch
 *		took some is a sample (dql.h)
 * @used_at_stop: bytes A2H held when the read stopped at the limit
 * @dql:	the byte limit
 * @held:	@rec was peeked but the TAP said EAGAIN: retry it first
 * @rec:	the held record (its frame stays valid: nothing is released)
 * @a2h_seen:	A2H ring counters already added to @stats
 * @coalesce_usecs: coalescing window (coalesce.h), 0 for off
 * @went_out:	frames TAP -> A2H since the pump last woke or polled
 * @came_in:	frames H2A -> TAP since then
 * @stats:	counters
 */
struct pump {
	int tap;
	struct ring *a2h;
	struct ring *h2a;
	int stop_efd;
	int stop;
	unsigned int burst;
	uint64_t release_bytes;
	int a2h_full;
	int limit_on;
	int limited;
	uint64_t used_at_stop;
	struct dql dql;
	int held;
	struct ring_rec rec;
	struct ring_stats a2h_seen;
	unsigned int coalesce_usecs;
	unsigned int went_out;
	unsigned int came_in;
	struct pump_stats stats;
};

/**
 * pump_create() - make a pump for one partition
 * @out:	new pump, out
 * @tap:	TAP descriptor, IFF_VNET_HDR with a 12-byte header; made
 *		O_NONBLOCK here if it is not
 * @a2h:	A2H ring, attached as RING_PRODUCER
 * @h2a:	H2A ring, attached as RING_CONSUMER
 * @burst:	frames per direction per round, 0 for PUMP_BURST_DEFAULT
 *
 * The pump does not own @tap or the rings: close them after pump_destroy().
 *
 * Return: 0, -EINVAL for a bad argument or ring role, -ENOMEM, or -errno
 */
int pump_create(struct pump **out, int tap, struct ring *a2h,
		struct ring *h2a, unsigned int burst)
{
	struct pump *p;
	int flags;

	if (!out || tap < 0 || !a2h || !h2a || burst > PUMP_BURST_MAX ||
	    ring_role(a2h) != RING_PRODUCER || ring_role(h2a) != RING_CONSUMER)
		return -EINVAL;
	/* The TAP may come from a dead agent's hands with O_NONBLOCK cleared. */
	flags = fcntl(tap, F_GETFL);
	if (flags < 0)
		return -errno;
	if (!(flags & O_NONBLOCK) && fcntl(tap, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->stop_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->stop_efd < 0) {
		int rc = -errno;

		free(p);
		return rc;
	}
	p->tap = tap;
	p->a2h = a2h;
	p->h2a = h2a;
	p->burst = burst ? burst : PUMP_BURST_DEFAULT;
	p->release_bytes = ring_data_size(h2a) / 4;
	p->coalesce_usecs = COALESCE_USECS_DEFAULT;
	p->limit_on = PUMP_A2H_LIMIT_DEFAULT;
	dql_init(&p->dql, DQL_MIN_DEFAULT, ring_data_size(a2h),
		 DQL_HOLD_NS_DEFAULT, util_now_ns());
	ring_get_stats(a2h, &p->a2h_seen);
	*out = p;
	return 0;
}

/**
 * pump_destroy() - free a pump that is not running
 * @p:		pump, may be NULL
 */
void pump_destroy(struct pump *p)
{
	if (!p)
		return;
	close(p->stop_efd);
	free(p);
}

/**
 * pump_set_coalesce() - set the coalescing window; call before pump_run()
 * @p:		pump
 * @usecs:	microseconds (COALESCE_USECS_DEFAULT unless set), 0 for off:
 *		then the pump sleeps whenever a round moves nothing
 *
 * Return: 0, or -EINVAL above COALESCE_USECS_MAX
 */
int pump_set_coalesce(struct pump *p, unsigned int usecs)
{
	if (usecs > COALESCE_USECS_MAX)
		return -EINVAL;
	p->coalesce_usecs = usecs;
	return 0;
}

/**
 * pump_set_a2h_limit() - turn the byte limit on A2H on or off; call
 * before pump_run()
 * @p:		pump
 * @on:		1: stop reading the TAP while A2H holds the limit (dql.h;
 *		PUMP_A2H_LIMIT_DEFAULT unless set), 0: read while A2H has room
 *
 * Return: 0, or -EINVAL for another @on
 */
int pump_set_a2h_limit(struct pump *p, int on)
{
	if (on != 0 && on != 1)
		return -EINVAL;
	p->limit_on = on;
	return 0;
}

/**
 * pump_stop() - ask pump_run() to return; callable from any thread
 * @p:		pump
 *
 * A pump stopped before it runs returns from pump_run() at once.
 *
 * Return: 0 or -errno from the eventfd write
 */
int pump_stop(struct pump *p)
{
	return util_stop(&p->stop, p->stop_efd);
}

/**
 * pump_get_stats() - copy out the counters; callable from any thread
 * @p:		pump
 * @st:		out
 */
void pump_get_stats(const struct pump *p, struct pump_stats *st)
{
	const uint64_t *src = (const uint64_t *)&p->stats;
	uint64_t *dst = (uint64_t *)st;

	for (size_t i = 0; i < sizeof(*st) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

/**
 * pump_read_limited() - TAP -> A2H while A2H holds less than the limit
 * @p:		pump
 * @n:		frames read, out
 *
 * The first look at A2H after a stop at the limit that finds the switch
 * took bytes is dql.h's sample: an empty ring and then a frame from the
 * TAP is a starvation (rule 1), bytes still there are slack (rule 2). A
 * look that finds nothing taken (the pump woke for the other direction)
 * is no sample, and the pump stays stopped.
 *
 * Return: as ring_read_fd(); 0 also when it stopped at the limit (then
 * @p->limited is set)
 */
static int pump_read_limited(struct pump *p, unsigned int *n)
{
	uint64_t used = ring_used(p->a2h);
	unsigned int got;
	int starved = 0, rc = -EAGAIN;

	*n = 0;
	if (p->limited) {
		if (used >= p->used_at_stop)
			return 0;	/* nothing taken yet: still at the limit */
		p->limited = 0;
		if (!used)
			starved = 1;
		else
			dql_slack(&p->dql, used, util_now_ns());
	}
	for (unsigned int tries = 0; tries < p->burst; tries++) {
		if (!dql_room(&p->dql, used)) {
			p->limited = 1;
			p->used_at_stop = used;
			PUMP_STAT_ADD(p, a2h_limited, 1);
			rc = 0;
			break;
		}
		rc = ring_read_fd(p->a2h, p->tap, 1, &got);
		*n += got;
		if (rc != -EAGAIN)
			break;
		used = ring_used(p->a2h);
	}
	if (starved && *n) {
		dql_starved(&p->dql, util_now_ns());
		PUMP_STAT_ADD(p, a2h_limit_grown, 1);
	}
	__atomic_store_n(&p->stats.a2h_limit, p->dql.limit, __ATOMIC_RELAXED);
	return rc;
}

/**
 * pump_from_tap() - TAP -> A2H, one burst, one flush
 * @p:		pump
 * @work:	frames moved are added (one more if more may be waiting)
 *
 * Return: 0 or -errno from read(), for a TAP that is gone (EBADFD)
 */
static int pump_from_tap(struct pump *p, unsigned int *work)
{
	struct ring_stats st;
	unsigned int n = 0;
	int rc, frc;

	if (p->limit_on)
		rc = pump_read_limited(p, &n);
	else
		rc = ring_read_fd(p->a2h, p->tap, p->burst, &n);
	frc = ring_flush(p->a2h);
	if (n) {
		ring_get_stats(p->a2h, &st);
		PUMP_STAT_ADD(p, tx_frames, st.records - p->a2h_seen.records);
		PUMP_STAT_ADD(p, tx_bytes, st.bytes - p->a2h_seen.bytes);
		PUMP_STAT_ADD(p, short_reads,
			      st.short_reads - p->a2h_seen.short_reads);
		p->a2h_seen = st;
		*work += n;
		p->went_out += n;
	}
	if (rc == -EAGAIN) {
		*work += 1;
	} else if (rc == -ENOBUFS) {
		p->a2h_full = 1;
		PUMP_STAT_ADD(p, a2h_full, 1);
	} else if (rc < 0) {
		return rc;
	}
	return frc;
}

/**
 * pump_to_tap() - H2A -> TAP, one burst, a release per quarter ring
 * @p:		pump
 * @work:	frames moved are added
 *
 * A frame the TAP refuses for good is dropped and counted; one it refuses
 * with EAGAIN is held (not released) and retried first next time.
 *
 * Return: 0 or -errno for a TAP that is gone (EBADF, EBADFD)
 */
static int pump_to_tap(struct pump *p, unsigned int *work)
{
	struct iovec iov[2];
	unsigned int n = 0;
	uint64_t unreleased = 0;
	int rc = 0;

	while (n < p->burst) {
		if (!p->held) {
			rc = ring_peek(p->h2a, &p->rec);
			if (rc == -EAGAIN) {
				rc = 0;
				break;
			}
			if (rc < 0)
				break;
			p->held = 1;
		}
		iov[0].iov_base = &p->rec.vnet;
		iov[0].iov_len = RING_VNET_HDR_LEN;
		iov[1].iov_base = (void *)p->rec.frame;
		iov[1].iov_len = p->rec.frame_len;
		if (writev(p->tap, iov, 2) < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				PUMP_STAT_ADD(p, tap_full, 1);
				break;
			}
			if (errno == EBADF || errno == EBADFD) {
				rc = -errno;
				break;
			}
			/* EIO: the partition set its device down; EINVAL: a
			 * header the TAP refuses. Drop, count, go on. */
			PUMP_STAT_ADD(p, tap_write_errors, 1);
		} else {
			PUMP_STAT_ADD(p, rx_frames, 1);
			PUMP_STAT_ADD(p, rx_bytes, p->rec.frame_len);
		}
		p->held = 0;
		n++;
		unreleased += p->rec.frame_len;
		if (unreleased >= p->release_bytes) {
			rc = ring_release(p->h2a);
			if (rc < 0)
				break;
			unreleased = 0;
		}
	}
	*work += n;
	p->came_in += n;
	if (!p->held) {
		int rrc = ring_release(p->h2a);

		if (!rc)
			rc = rrc;
	}
	return rc;
}

/**
 * pump_sleep() - arm what we wait for, poll a while if asked, sleep in poll()
 * @p:		pump
 * @co:		coalescing state: its poll budget (coalesce_poll_ns()) for
 *		this sleep, 0 for none
 * @poll_ns:	that budget
 *
 * A poll is the same poll() with a zero timeout, turn after turn
 * (coalesce_poll_turn() yields between them), until something is ready
 * or the budget is spent; then the sleep proper, unless it found input.
 *
 * Return: 1 if the poll found the answer (H2A records), 2 if it found
 * other input (more frames on the TAP: a stream, not a round trip), 0
 * (woken, or work found while arming) or -errno from poll()
 */
static int pump_sleep(struct pump *p, struct coalesce *co, uint64_t poll_ns)
{
	struct pollfd pfd[3];
	int a2h_armed = 0, h2a_armed = 0, hit = 0, rc;
	nfds_t n = 0;

	pfd[n++] = (struct pollfd){ .fd = p->stop_efd, .events = POLLIN };
	pfd[n] = (struct pollfd){ .fd = p->tap, .events = 0 };
	if (!p->a2h_full && !p->limited)
		pfd[n].events |= POLLIN;
	if (p->held)
		pfd[n].events |= POLLOUT;
	n++;
	if (!p->held) {
		if (ring_arm(p->h2a, 0))
			return 0;	/* records arrived: not armed */
		h2a_armed = 1;
		pfd[n++] = (struct pollfd){ .fd = ring_fileno(p->h2a),
					    .events = POLLIN };
	}
	if (p->a2h_full) {
		if (ring_arm(p->a2h, RING_LEN_MAX)) {
			p->a2h_full = 0;	/* room now: not armed */
			goto disarm;
		}
		a2h_armed = 1;
		pfd[n++] = (struct pollfd){ .fd = ring_fileno(p->a2h),
					    .events = POLLIN };
	} else if (p->limited) {
		if (ring_arm_below(p->a2h, p->dql.limit))
			goto disarm;	/* below the limit now: not armed */
		a2h_armed = 1;
		pfd[n++] = (struct pollfd){ .fd = ring_fileno(p->a2h),
					    .events = POLLIN };
	}
	if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE))
		goto disarm;

	if (poll_ns) {
		uint64_t deadline = util_now_ns() + poll_ns;

		PUMP_STAT_ADD(p, polls, 1);
		do {
			rc = poll(pfd, n, 0);
		} while (!rc && coalesce_poll_turn(co, deadline));
		if (rc > 0 && h2a_armed && pfd[2].revents) {
			PUMP_STAT_ADD(p, poll_hits, 1);
			hit = 1;
		} else if (rc > 0) {
			hit = 2;
		}
		if (rc)
			goto slept;
	}
	PUMP_STAT_ADD(p, sleeps, 1);
	rc = poll(pfd, n, -1);
	PUMP_STAT_ADD(p, wakeups, 1);
slept:
	if (rc < 0)
		rc = errno == EINTR ? 0 : -errno;
	if (rc < 0) {
		if (h2a_armed)
			ring_disarm(p->h2a);
		if (a2h_armed)
			ring_disarm(p->a2h);
		return rc;
	}
disarm:
	if (h2a_armed)
		ring_disarm(p->h2a);
	if (a2h_armed) {
		ring_disarm(p->a2h);
		if (ring_ready(p->a2h, RING_LEN_MAX))
			p->a2h_full = 0;
	}
	return hit;
}

/**
 * pump_run() - move frames until pump_stop()
 * @p:		pump
 *
 * Runs in the calling thread (from Python: a thread, the GIL released by
 * cffi). Sleeps in poll() whenever neither direction has work; naps
 * between rounds while frames come densely (pump_set_coalesce()).
 *
 * Return: 0 after pump_stop(), or -errno when the TAP or a ring fails
 * for good (-EBADFD: the TAP device was deleted)
 */
int pump_run(struct pump *p)
{
	struct coalesce co;
	unsigned int work;
	uint64_t poll_ns;
	int rc;

	coalesce_init(&co, p->coalesce_usecs);
	while (!__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
		work = 0;
		if (p->a2h_full && ring_ready(p->a2h, RING_LEN_MAX))
			p->a2h_full = 0;
		if (!p->a2h_full) {
			rc = pump_from_tap(p, &work);
			if (unlikely(rc < 0))
				return rc;
		}
		rc = pump_to_tap(p, &work);
		if (unlikely(rc < 0))
			return rc;
		if (work) {
			if (coalesce_round(&co, work))
				PUMP_STAT_ADD(p, naps, 1);
			continue;
		}
		coalesce_round(&co, 0);
		/* a round trip in flight: frames went out, none came in */
		poll_ns = coalesce_poll_ns(&co, !p->came_in && p->went_out);
		p->went_out = p->came_in = 0;
		coalesce_sleeping(&co);
		rc = pump_sleep(p, &co, poll_ns);
		if (unlikely(rc < 0))
			return rc;
		if (poll_ns && rc != 2)
			coalesce_polled(&co, rc);
		/* an answer within the window is dense traffic too (TCP's
		   ACKs): busy, so the next rounds batch as before */
		coalesce_woken(&co);
	}
	return 0;
}
