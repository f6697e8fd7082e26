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
 * A round trip in flight. A loop that woke after a long sleep and moved
 * a lone frame or two that call for an answer (a ping, an ARP request, a
 * TCP_RR transaction) does not sleep at once: for up to @poll_ns it
 * polls its inputs (a zero-timeout poll()/epoll_wait(), then
 * sched_yield()), so the answer finds it awake and costs no wakeup. It
 * ends by itself: at the first input, at the deadline, or at once when
 * the loop is busy; a poll that found nothing makes the next ones rarer
 * (the loop skips 0, 1, 3 ... 63 chances), one that found the answer
 * resets that and the answer itself is not polled after. sched_yield()
 * gives the CPU to anything runnable on it at every turn, so a poll never
 * holds a CPU another task wants (on 2 vCPUs the peer that must answer
 * is often woken onto the poller's CPU).
 *
 * docs/performance.md has the measurements behind the default window;
 * docs/design-notes.md those behind the poll.
 */
#ifndef VNETSHARE_COALESCE_H
#define VNETSHARE_COALESCE_H

#include <stdint.h>
#include <sched.h>
#include <sys/prctl.h>
#include <time.h>
#include "util.h"

/* cdef: begin */
#define COALESCE_USECS_DEFAULT	100u
#define COALESCE_USECS_MAX	10000u
#define COALESCE_POLL_FRAMES	4u	/* at most this many frames make a "lone" burst */
#define COALESCE_POLL_WINDOWS	3u	/* a poll lasts this many windows at most */
#define COALESCE_POLL_SKIP_MAX	63u	/* chances skipped after misses, at most */
/* cdef: end */

/**
 * struct coalesce - one loop's coalescing state
 * @window_ns:	nap length and "busy" threshold; 0 turns coalescing off
 * @slept_at:	CLOCK_MONOTONIC time the last sleep began
 * @busy:	the last wakeup came within @window_ns of the sleep
 * @poll_ns:	longest poll for an answer (COALESCE_POLL_WINDOWS windows,
 *		300 us by default: a partition-to-partition answer takes
 *		three wakeups, each up to 75 us here); 0: off
 * @moved:	frames moved since the loop last woke or polled
 * @answered:	the last poll found its answer: the frames that follow are
 *		that answer, not polled after
 * @skip:	chances to poll still to skip (after misses)
 * @misses:	polls in a row that found nothing
 */
struct coalesce {
	uint64_t window_ns;
	uint64_t slept_at;
	int busy;
	uint64_t poll_ns;
	unsigned int moved;
	int answered;
	unsigned int skip;
	unsigned int misses;
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
	c->poll_ns = c->window_ns * COALESCE_POLL_WINDOWS;
	c->moved = 0;
	c->answered = 0;
	c->skip = 0;
	c->misses = 0;
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

	if (moved && c->moved < COALESCE_POLL_FRAMES + 1)
		c->moved += moved;
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

/**
 * coalesce_poll_ns() - how long to poll before sleeping, if at all
 * @c:		state
 * @lone:	the caller's own test passed: what moved since the loop woke
 *		calls for an answer (the pump: frames out of its TAP only;
 *		the switch: frames from one input only). @c->moved must be
 *		1..COALESCE_POLL_FRAMES too.
 *
 * Call once when a round moved nothing, before coalesce_sleeping().
 *
 * Return: the poll's budget in ns, 0 for none (sleep at once)
 */
static inline uint64_t coalesce_poll_ns(struct coalesce *c, int lone)
{
	unsigned int moved = c->moved;
	int answered = c->answered;

	c->moved = 0;
	c->answered = 0;
	if (!c->poll_ns || c->busy || answered || !lone || !moved ||
	    moved > COALESCE_POLL_FRAMES)
		return 0;
	if (c->skip) {
		c->skip--;
		return 0;
	}
	return c->poll_ns;
}

/**
 * coalesce_polled() - a poll ended
 * @c:		state
 * @hit:	it found the answer; 0: it ran out (a poll that found other
 *		input, a stream's next frames, is neither: don't call this)
 */
static inline void coalesce_polled(struct coalesce *c, int hit)
{
	if (hit) {
		c->misses = 0;
		c->answered = 1;
		return;
	}
	/* The first miss skips nothing: a switch that polled after an answer
	 * (it cannot tell a request from a reply) polls after the next
	 * request, finds its answer and is in step again. */
	if (c->misses < 7)
		c->misses++;
	c->skip = (1u << (c->misses - 1)) - 1;
	if (c->skip > COALESCE_POLL_SKIP_MAX)
		c->skip = COALESCE_POLL_SKIP_MAX;
}

/**
 * coalesce_poll_turn() - one turn of a poll: give the CPU to whoever waits
 * @c:		state (unused: one place to change how a turn waits)
 * @deadline:	CLOCK_MONOTONIC ns the poll ends at
 *
 * Return: 1 to go on polling, 0 once the deadline passed
 */
static inline int coalesce_poll_turn(const struct coalesce *c,
				     uint64_t deadline)
{
	(void)c;
	sched_yield();
	return util_now_ns() < deadline;
}

#endif /* VNETSHARE_COALESCE_H */
