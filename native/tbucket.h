/* SPDX-License-Identifier: MIT */
/* tbucket.h - token buckets for the switch's storm control and rate limits
 *
 * A pure, header-only token bucket: no clock of its own (the caller passes
 * CLOCK_MONOTONIC nanoseconds, util_now_ns()), no allocation, no failure.
 * The switch keeps one per port for broadcast/multicast frames (storm
 * control) and up to two per direction (bits and packets, the units and
 * semantics of Open vSwitch's ingress_policing_rate/_burst and
 * ingress_policing_kpkts_rate/_burst).
 *
 * Rules of a bucket:
 *  1. @rate 0 means no limit: every frame conforms, nothing is counted.
 *  2. Tokens are kept in nano-units (unit * 1e9), so a refill of
 *     @rate units/s over dt ns adds exactly @rate * dt nano-units: no
 *     rounding error accumulates, whatever the rate. The arithmetic is
 *     128-bit (unsigned __int128 for products, __int128 for the level),
 *     so no rate, burst or interval up to 2^64 overflows.
 *  3. A full bucket holds @burst units, and a bucket starts full.
 *  4. A frame conforms while the level is above zero, and is then charged
 *     its full size (tbucket_charge()), which may leave the bucket in
 *     debt: so a frame larger than the burst (a 64 KiB GSO frame against
 *     a small burst) still passes, once the bucket is full, and over time
 *     the rate holds exactly. What passes in any window of T seconds is
 *     at most @burst + @rate * T units plus one frame.
 *  5. Time only moves forward: a @now older than the last one refills
 *     nothing.
 *
 *   level (nano-units)
 *   burst*1e9 ─────────┬──────────────  full: the refill stops here
 *                      │   /
 *                      │  /  refill: + rate * dt
 *           0 ─────────┼─/───────────── conforms above this line
 *                      │/
 *   -frame ────────────┘                one big frame charged: in debt,
 *                                       waits (TX) or drops (RX) until > 0
 */
#ifndef VNETSHARE_TBUCKET_H
#define VNETSHARE_TBUCKET_H

#include <stdint.h>

/* cdef: begin */
#define TBUCKET_NANO	1000000000ull	/* nano-units per unit */

/**
 * struct tbucket - one token bucket
 * @rate:	units per second; 0: no limit (rule 1)
 * @burst:	units a full bucket holds (rule 3)
 * @level:	tokens now, in nano-units; negative: in debt (rule 4)
 * @last_ns:	time of the last refill
 */
struct tbucket {
	uint64_t rate;
	uint64_t burst;
	__int128 level;		/* cdef: opaque */
	uint64_t last_ns;
};

static inline void tbucket_init(struct tbucket *tb, uint64_t rate,
				uint64_t burst, uint64_t now);
static inline void tbucket_set(struct tbucket *tb, uint64_t rate,
			       uint64_t burst, uint64_t now);
static inline int tbucket_ok(struct tbucket *tb, uint64_t now);
static inline void tbucket_charge(struct tbucket *tb, uint64_t n);
static inline int tbucket_take(struct tbucket *tb, uint64_t n, uint64_t now);
static inline uint64_t tbucket_wait_ns(struct tbucket *tb, uint64_t now);
/* cdef: end */

/**
 * tbucket_cap() - a full bucket's level in nano-units
 * @burst:	units
 *
 * Return: @burst * 1e9, in 128 bits
 */
static inline __int128 tbucket_cap(uint64_t burst)
{
	return (__int128)((unsigned __int128)burst * TBUCKET_NANO);
}

/**
 * tbucket_init() - a full bucket
 * @tb:		bucket
 * @rate:	units per second, 0 for no limit
 * @burst:	units a full bucket holds
 * @now:	time now, ns
 */
static inline void tbucket_init(struct tbucket *tb, uint64_t rate,
				uint64_t burst, uint64_t now)
{
	tb->rate = rate;
	tb->burst = burst;
	tb->level = tbucket_cap(burst);
	tb->last_ns = now;
}

/**
 * tbucket_refill() - add what @rate gave since the last refill, up to full
 * @tb:		bucket
 * @now:	time now, ns (rule 5: older than the last refill adds nothing)
 */
static inline void tbucket_refill(struct tbucket *tb, uint64_t now)
{
	__int128 cap = tbucket_cap(tb->burst);
	unsigned __int128 add;
	uint64_t dt;

	if (now <= tb->last_ns)
		return;
	dt = now - tb->last_ns;
	tb->last_ns = now;
	if (tb->level >= cap)
		return;
	/* rate, dt < 2^64: the product fits 128 bits unsigned; clamp it before
	 * it meets the signed level */
	add = (unsigned __int128)tb->rate * dt;
	if (add >= (unsigned __int128)(cap - tb->level))
		tb->level = cap;
	else
		tb->level += (__int128)add;
}

/**
 * tbucket_set() - change rate and burst, keeping the level sensibly
 * @tb:		bucket
 * @rate:	new rate, 0 for no limit
 * @burst:	new burst
 * @now:	time now, ns
 *
 * The old rate refills up to @now first; then the level is clamped to the
 * new burst. A bucket that had no limit starts full, so a limit set live
 * does not start with an empty bucket; debt is kept (a frame charged is
 * paid for), unless the limit is lifted.
 */
static inline void tbucket_set(struct tbucket *tb, uint64_t rate,
			       uint64_t burst, uint64_t now)
{
	if (!tb->rate || !rate) {
		tbucket_init(tb, rate, burst, now);
		return;
	}
	tbucket_refill(tb, now);
	tb->rate = rate;
	tb->burst = burst;
	if (tb->level > tbucket_cap(burst))
		tb->level = tbucket_cap(burst);
}

/**
 * tbucket_ok() - may a frame pass now? (rule 4: the level is above zero)
 * @tb:		bucket
 * @now:	time now, ns
 *
 * Return: 1 if it conforms (always, with no limit), 0 if not
 */
static inline int tbucket_ok(struct tbucket *tb, uint64_t now)
{
	if (!tb->rate)
		return 1;
	/* always refill: a lazy refill after charges would forget that the
	 * bucket was full (and overflowing) meanwhile */
	tbucket_refill(tb, now);
	return tb->level > 0;
}

/**
 * tbucket_charge() - take @n units for a frame that passed
 * @tb:		bucket
 * @n:		units (bits or one packet)
 *
 * The level may go below zero (rule 4). Call tbucket_ok() first: it
 * refilled the bucket to the same time.
 */
static inline void tbucket_charge(struct tbucket *tb, uint64_t n)
{
	if (tb->rate)
		tb->level -= tbucket_cap(n);
}

/**
 * tbucket_take() - tbucket_ok(), then tbucket_charge() if it conforms
 * @tb:		bucket
 * @n:		units
 * @now:	time now, ns
 *
 * Return: 1 if the frame passes (and was charged), 0 if not
 */
static inline int tbucket_take(struct tbucket *tb, uint64_t n, uint64_t now)
{
	if (!tbucket_ok(tb, now))
		return 0;
	tbucket_charge(tb, n);
	return 1;
}

/**
 * tbucket_wait_ns() - how long until a frame conforms
 * @tb:		bucket, refilled to @now by tbucket_ok()
 * @now:	time now, ns
 *
 * Return: 0 if one conforms now (or there is no limit), else the
 * nanoseconds until the level is above zero (at most UINT64_MAX)
 */
static inline uint64_t tbucket_wait_ns(struct tbucket *tb, uint64_t now)
{
	unsigned __int128 ns;

	if (!tb->rate)
		return 0;
	tbucket_refill(tb, now);
	if (tb->level > 0)
		return 0;
	ns = (unsigned __int128)(-tb->level) / tb->rate + 1;
	return ns > UINT64_MAX ? UINT64_MAX : (uint64_t)ns;
}

#endif /* VNETSHARE_TBUCKET_H */
