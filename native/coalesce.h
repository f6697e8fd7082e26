/* SPDX-License-Identifier: MIT */
/* coalesce.h - adaptive wakeup coalescing for the pump and switch loops
 *
 * A loop that drains its inputs and sleeps until a peer kicks it pays one
 * wakeup per few frames when frames come a few microseconds apart: on the
 * 2-vCPU VMs we run on, a wakeup (eventfd or TAP poll, an IPI to a halted
 * vCPU) costs more than moving the frames. NICs solve the same problem
 * with adaptive interrupt moderation (ethtool -C adaptive-rx, rx-usecs):
 * at a low rate every frame raises an interrupt, at a high rate they are
 * batched. We do the same:
 *
 *   - A loop that was woken less than @window_ns after it went to sleep
 *     is "busy": the frames come densely.
 *   - A busy loop that moved frames naps for @window_ns (a timed sleep
 *     with its waiting flags cleared, so peers do not kick it) and then
 *     takes in one round whatever arrived meanwhile.
 *   - A round that moves nothing ends the busy state: the loop arms and
 *     sleeps as before, and the next frame wakes it at once.
 *
 * So a lone frame (a ping, an ARP) never waits for a nap: the loop had
 * slept long before it came. Only a stream of frames is batched, by at
 * most @window_ns per hop. No CPU is spent spinning, and an idle loop
 * costs nothing. Timer slack is set to 1 us on the loop's thread so a
 * nap lasts what it says (the default slack is 50 us).
 *
 * docs/performance.md has the measurements behind the default window.
 */
#ifndef VNETSHARE_COALESCE_H
#define VNETSHARE_COALESCE_H

#include <stdint.h>
#include <sys/prctl.h>
#include <time.h>
#include "util.h"

#define COALESCE_USECS_DEFAULT	100u
#define COALESCE_USECS_MAX	10000u

/**
 * struct coalesce - one loop's coalescing state
 * @window_ns:	nap length and "busy" threshold; 0 turns coalescing off
 * @slept_at:	CLOCK_MONOTONIC time the last sleep began
 * @busy:	the last wakeup came within @window_ns of the sleep
 */
struct coalesce {
	uint64_t window_ns;
	uint64_t slept_at;
	int busy;
};

/**
 * coalesce_init() - set the window; call in the loop's own thread
 * @c:		state
 * @usecs:	window in microseconds, 0 for off
 */
static inline void coalesce_init(struct coalesce *c, unsigned int usecs)
{
	c->window_ns = (uint64_t)usecs * 1000u;
	c->slept_at = 0;
	c->busy = 0;
	if (usecs)
		prctl(PR_SET_TIMERSLACK, 1000ul, 0, 0, 0);
}

/**
 * coalesce_round() - after a round: nap if busy and frames moved
 * @c:		state
 * @moved:	frames the round moved (0: the loop is about to sleep)
 *
 * Return: 1 if it napped
 */
static inline int coalesce_round(struct coalesce *c, unsigned int moved)
{
	struct timespec nap;

	if (!moved || !c->window_ns) {
		c->busy = 0;
		return 0;
	}
	if (!c->busy)
		return 0;
	nap.tv_sec = (time_t)(c->window_ns / 1000000000ull);
	nap.tv_nsec = (long)(c->window_ns % 1000000000ull);
	nanosleep(&nap, NULL);
	return 1;
}

/**
 * coalesce_sleeping() - the loop is about to sleep until kicked
 * @c:		state
 */
static inline void coalesce_sleeping(struct coalesce *c)
{
	if (c->window_ns)
		c->slept_at = util_now_ns();
}

/**
 * coalesce_woken() - the loop's sleep ended
 * @c:		state
 */
static inline void coalesce_woken(struct coalesce *c)
{
	if (c->window_ns)
		c->busy = util_now_ns() - c->slept_at < c->window_ns;
}

#endif /* VNETSHARE_COALESCE_H */
