/* SPDX-License-Identifier: MIT */
/* ring_bench.h - C loops that drive a ring at full speed, for tests and bench
 *
 * A Python loop would measure Python, so the cross-process tests (millions of
 * records, no lost wakeup) and scripts/bench.py drive rings from these loops:
 * a producer, a consumer, a ping and a pong side, and the same transfer over
 * a socket for scale. Each side runs in its own process (fork).
 *
 * Every frame carries its sequence number at offset RING_ETH_HLEN (8 bytes,
 * host order); its length is sizes[seq % nsizes]. With BENCH_VERIFY every
 * byte after that is ((seq + i) & 0xff) and the consumer checks each one;
 * without it the producer copies a prepared buffer in and the consumer copies
 * the frame out, one copy each way, as the data path does.
 */
#ifndef VNETSHARE_RING_BENCH_H
#define VNETSHARE_RING_BENCH_H

#include <stdint.h>

#include "ring.h"

/* cdef: begin */
#define BENCH_POLL	0x1u	/* spin on the ring, never sleep */
#define BENCH_VERIFY	0x2u	/* write and check every byte */

/**
 * struct bench_result - what one side of a bench loop did
 * @records:	records (or messages) moved
 * @bytes:	frame bytes moved
 * @elapsed_ns:	wall time of the loop
 * @bad:	records that arrived out of order, with a wrong length or a
 *		wrong byte
 * @first_bad:	sequence number expected when the first bad record came
 */
struct bench_result {
	uint64_t records;
	uint64_t bytes;
	uint64_t elapsed_ns;
	uint64_t bad;
	uint64_t first_bad;
};

int bench_produce(struct ring *r, uint64_t count, const uint32_t *sizes,
		  unsigned int nsizes, unsigned int burst,
		  unsigned int pause_every, unsigned int pause_us,
		  unsigned int flags, int timeout_ms, struct bench_result *res);
int bench_consume(struct ring *r, uint64_t count, const uint32_t *sizes,
		  unsigned int nsizes, unsigned int flags, int timeout_ms,
		  struct bench_result *res);
int bench_ping(struct ring *tx, struct ring *rx, uint64_t count, uint32_t len,
	       unsigned int flags, int timeout_ms, uint64_t *rtt_ns,
	       struct bench_result *res);
int bench_pong(struct ring *rx, struct ring *tx, uint64_t count,
	       unsigned int flags, int timeout_ms, struct bench_result *res);
int bench_sock_send(int fd, uint64_t count, uint32_t len,
		    struct bench_result *res);
int bench_sock_recv(int fd, uint64_t count, uint32_t len,
		    struct bench_result *res);
/* cdef: end */

#endif /* VNETSHARE_RING_BENCH_H */
