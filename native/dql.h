/* SPDX-License-Identifier: MIT */
/* dql.h - a dynamic byte limit on what the pump takes from the TAP
 *
 * The TAP orphans every frame it queues, so TCP Small Queues never hold a
 * partition's stream back: the stack hands the TAP as much as its send
 * buffer allows, and the pump, reading the TAP as fast as it can, moves
 * all of it into the A2H ring, where a ping queues behind it. Like the
 * kernel's dynamic queue limits (lib/dynamic_queue_limits.c, the byte
 * limit a NIC driver puts on its own DMA ring), the pump stops reading the
 * TAP while A2H holds @limit bytes the switch has not taken, and @limit
 * follows how fast the switch really takes them:
 *
 *  1. Starved: the pump had stopped at the limit, came back (the switch
 *     released records and woke it) and found A2H empty, and the TAP then
 *     still had frames: the switch waited for bytes the limit held back.
 *     The limit grows by half (dql_starved()), up to @max_limit.
 *  2. Slack: the pump had stopped at the limit, the switch took bytes,
 *     and the pump came back to a ring that still held some: those were
 *     more than the switch needed meanwhile (a look before the switch
 *     took anything is no sample: pump.c). The least such excess over @hold_ns is taken off the
 *     limit at the end of that window (dql_slack()), down to @min_limit.
 *     A starvation starts a new window.
 *  3. Neither is sampled while the pump reads below the limit: a partition
 *     that sends less than the switch takes never meets it.
 *
 * What the limit keeps out of A2H waits in the TAP's own queue
 * (txqueuelen frames, `vnetshare daemon --tap-txqueuelen`), and past that
 * the TAP drops: TCP backs off by loss, as behind a NIC's short ring.
 *
 * Pure: no clock of its own (the caller passes CLOCK_MONOTONIC ns), no
 * allocation, no failure; tests/native/test_dql.py drives it.
 */
#ifndef VNETSHARE_DQL_H
#define VNETSHARE_DQL_H

#include <stdint.h>

/* cdef: begin */
#define DQL_MIN_DEFAULT		(64u << 10)	/* one largest frame */
#define DQL_START_DEFAULT	(256u << 10)
#define DQL_HOLD_NS_DEFAULT	100000000ull	/* 100 ms */

/**
 * struct dql - one pump's byte limit on A2H
 * @limit:	bytes A2H may hold before the pump stops reading the TAP
 * @min_limit:	floor
 * @max_limit:	ceiling (the ring's data size)
 * @hold_ns:	how long the least slack is watched before it is taken off
 * @lowest_slack: least excess seen in this window, UINT64_MAX for none
 * @slack_start_ns: when this window started
 * @grown:	times the limit grew (rule 1)
 * @shrunk:	times it shrank (rule 2)
 */
struct dql {
	uint64_t limit;
	uint64_t min_limit;
	uint64_t max_limit;
	uint64_t hold_ns;
	uint64_t lowest_slack;
	uint64_t slack_start_ns;
	uint64_t grown;
	uint64_t shrunk;
};

static inline void dql_init(struct dql *d, uint64_t min_limit,
			    uint64_t max_limit, uint64_t hold_ns, uint64_t now);
static inline int dql_room(const struct dql *d, uint64_t used);
static inline void dql_starved(struct dql *d, uint64_t now);
static inline void dql_slack(struct dql *d, uint64_t used, uint64_t now);
/* cdef: end */

/**
 * dql_init() - a limit of DQL_START_DEFAULT, clamped to [@min_limit, @max_limit]
 * @d:		limit
 * @min_limit:	floor, bytes (DQL_MIN_DEFAULT; a frame is taken while below
 *		the limit, so even 0 lets one through at a time)
 * @max_limit:	ceiling, bytes; below @min_limit is taken as @min_limit
 * @hold_ns:	the slack window (DQL_HOLD_NS_DEFAULT)
 * @now:	time now, ns
 */
static inline void dql_init(struct dql *d, uint64_t min_limit,
			    uint64_t max_limit, uint64_t hold_ns, uint64_t now)
{
	if (max_limit < min_limit)
		max_limit = min_limit;
	d->min_limit = min_limit;
	d->max_limit = max_limit;
	d->limit = DQL_START_DEFAULT < min_limit ? min_limit :
		   DQL_START_DEFAULT > max_limit ? max_limit : DQL_START_DEFAULT;
	d->hold_ns = hold_ns;
	d->lowest_slack = UINT64_MAX;
	d->slack_start_ns = now;
	d->grown = d->shrunk = 0;
}

/**
 * dql_room() - may the pump take another frame from the TAP?
 * @d:		limit
 * @used:	bytes A2H holds that the switch has not taken (ring_used())
 *
 * A frame is taken while @used is below the limit, so A2H holds at most
 * the limit plus one frame.
 *
 * Return: 1 if so, 0 if the pump stops at the limit
 */
static inline int dql_room(const struct dql *d, uint64_t used)
{
	return used < d->limit;
}

/**
 * dql_starved() - rule 1: the switch emptied A2H while the limit held frames back
 * @d:		limit
 * @now:	time now, ns
 */
static inline void dql_starved(struct dql *d, uint64_t now)
{
	uint64_t grow = d->limit / 2 ? d->limit / 2 : 1;

	d->limit = d->max_limit - d->limit < grow ? d->max_limit : d->limit + grow;
	d->grown++;
	d->lowest_slack = UINT64_MAX;
	d->slack_start_ns = now;
}

/**
 * dql_slack() - rule 2: the pump came back to @used bytes still in A2H
 * @d:		limit
 * @used:	bytes A2H held when the pump came back from its stop (> 0)
 * @now:	time now, ns (earlier than the window's start: no end yet)
 */
static inline void dql_slack(struct dql *d, uint64_t used, uint64_t now)
{
	if (used < d->lowest_slack)
		d->lowest_slack = used;
	if (now < d->slack_start_ns || now - d->slack_start_ns < d->hold_ns)
		return;
	if (d->limit - d->min_limit < d->lowest_slack)
		d->limit = d->min_limit;
	else
		d->limit -= d->lowest_slack;
	d->shrunk++;
	d->lowest_slack = UINT64_MAX;
	d->slack_start_ns = now;
}

#endif /* VNETSHARE_DQL_H */
