/* SPDX-License-Identifier: MIT */
/* pump.h - the partition agent's loop: frames between a TAP and two rings
 *
 * The pump is the patent's virtual hosted device driver: it moves what the
 * partition's stack sends on its TAP into the A2H ring (read() straight into
 * ring records, ring_flush() once per burst) and what the daemon put in the
 * H2A ring onto the TAP (writev() straight from ring memory). It sleeps in
 * poll() when there is nothing to do, and costs no CPU then; while frames
 * come densely it naps between rounds instead, so it wakes once per batch
 * rather than once per frame (coalesce.h).
 *
 *   TAP --read()--> A2H ring --> daemon         daemon --> H2A ring --writev()--> TAP
 *
 * One thread calls pump_run(); any thread may call pump_stop() and
 * pump_get_stats() meanwhile.
 */
#ifndef VNETSHARE_PUMP_H
#define VNETSHARE_PUMP_H

#include <stdint.h>

#include "ring.h"

/* cdef: begin */
#define PUMP_BURST_DEFAULT	64u	/* frames per direction per round */
#define PUMP_BURST_MAX		1024u
#define PUMP_A2H_LIMIT_DEFAULT	0	/* the byte limit on A2H (dql.h): off */

struct pump;

/**
 * struct pump_stats - what a pump did (partition view: tx = sent by it)
 * @tx_frames:	frames read from the TAP into A2H
 * @tx_bytes:	their bytes (Ethernet frame, vnet header not counted)
 * @rx_frames:	frames written from H2A to the TAP
 * @rx_bytes:	their bytes
 * @a2h_full:	times A2H was full: the pump stops reading the TAP until the
 *		daemon makes room (meanwhile the TAP's own queue holds frames,
 *		and drops past its length, counted as the TAP's tx_dropped)
 * @short_reads: TAP reads too short to be a frame, dropped
 * @tap_write_errors: H2A frames the TAP refused, dropped (EIO while the
 *		partition has its device down, EINVAL for a header it refuses)
 * @tap_full:	times a TAP write said EAGAIN (frame kept, retried on POLLOUT)
 * @sleeps:	times the pump slept in poll()
 * @wakeups:	poll() returns
 * @naps:	coalescing naps taken between busy rounds (coalesce.h)
 * @polls:	polls for an answer before sleeping (a lone frame went out)
 * @poll_hits:	those that found the answer (H2A records), so the pump
 *		did not sleep
 * @a2h_limited: times the pump stopped reading the TAP at the byte limit
 *		(dql.h), the TAP's queue holding the rest
 * @a2h_limit_grown: times the limit grew: A2H ran empty while it held
 *		frames back
 * @a2h_limit:	the limit now, bytes (0 while it is off)
 */
struct pump_stats {
	uint64_t tx_frames;
	uint64_t tx_bytes;
	uint64_t rx_frames;
	uint64_t rx_bytes;
	uint64_t a2h_full;
	uint64_t short_reads;
	uint64_t tap_write_errors;
	uint64_t tap_full;
	uint64_t sleeps;
	uint64_t wakeups;
	uint64_t naps;
	uint64_t polls;
	uint64_t poll_hits;
	uint64_t a2h_limited;
	uint64_t a2h_limit_grown;
	uint64_t a2h_limit;
};

int pump_create(struct pump **out, int tap_fd, struct ring *a2h,
		struct ring *h2a, unsigned int burst);
int pump_set_coalesce(struct pump *p, unsigned int usecs);
int pump_set_a2h_limit(struct pump *p, int on);
int pump_run(struct pump *p);
int pump_stop(struct pump *p);
void pump_get_stats(const struct pump *p, struct pump_stats *st);
void pump_destroy(struct pump *p);
/* cdef: end */

#endif /* VNETSHARE_PUMP_H */
