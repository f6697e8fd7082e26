// SPDX-License-Identifier: MIT
/* ring_bench.c - C loops that drive a ring at full speed, for tests and bench */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ring_bench.h"
#include "util.h"

#define BENCH_SEQ_OFF	RING_ETH_HLEN
#define BENCH_HDR_LEN	(BENCH_SEQ_OFF + 8)

/* One process runs one side, so these are not shared between loops. */
static uint8_t bench_src[RING_LEN_MAX];
static uint8_t bench_sink[RING_LEN_MAX];

/**
 * bench_fill() - write frame @seq of @len bytes, led by a zero vnet header
 * @p:		payload (vnet header + frame)
 * @seq:	sequence number
 * @len:	frame length, >= BENCH_HDR_LEN
 * @flags:	BENCH_VERIFY for the full byte pattern
 */
static void bench_fill(uint8_t *p, uint64_t seq, uint32_t len,
		       unsigned int flags)
{
	uint8_t *f = p + RING_VNET_HDR_LEN;

	memset(p, 0, RING_VNET_HDR_LEN);
	if (flags & BENCH_VERIFY) {
		memset(f, 0xff, 6);			/* broadcast */
		memcpy(f + 6, "\x02\0\0\0\0\x01\x88\xb5", 8);
		for (uint32_t i = BENCH_HDR_LEN; i < len; i++)
			f[i] = (uint8_t)(seq + i);
	} else {
		memcpy(f, bench_src, len);
	}
	memcpy(f + BENCH_SEQ_OFF, &seq, sizeof(seq));
}

/**
 * bench_check() - is @f frame @seq, of the length the schedule says?
 * @f:		frame (private copy, or ring memory in verify mode)
 * @len:	its length
 * @seq:	expected sequence number
 * @want:	expected length
 * @flags:	BENCH_VERIFY to check every byte
 *
 * Return: 1 if it is
 */
static int bench_check(const uint8_t *f, uint32_t len, uint64_t seq,
		       uint32_t want, unsigned int flags)
{
	uint64_t got;

	if (len != want)
		return 0;
	memcpy(&got, f + BENCH_SEQ_OFF, sizeof(got));
	if (got != seq)
		return 0;
	if (flags & BENCH_VERIFY)
		for (uint32_t i = BENCH_HDR_LEN; i < len; i++)
			if (f[i] != (uint8_t)(seq + i))
				return 0;
	return 1;
}

static void bench_bad(struct bench_result *res, uint64_t seq)
{
	if (!res->bad++)
		res->first_bad = seq;
}

/**
 * bench_until() - wait for a ring side to be ready, spinning or sleeping
 * @r:		handle
 * @need:	as for ring_ready()
 * @flags:	BENCH_POLL to spin
 * @deadline:	absolute CLOCK_MONOTONIC ns, 0 for none
 *
 * Return: 0 or -ETIMEDOUT
 */
static int bench_until(struct ring *r, uint32_t need, unsigned int flags,
		       uint64_t deadline)
{
	uint64_t now;
	int left = -1;

	if (flags & BENCH_POLL) {
		for (unsigned int i = 1; !ring_ready(r, need); i++)
			if (!(i & 0xfff) && deadline &&
			    util_now_ns() > deadline)
				return -ETIMEDOUT;
		return 0;
	}
	if (deadline) {
		now = util_now_ns();
		if (now >= deadline)
			return ring_ready(r, need) ? 0 : -ETIMEDOUT;
		left = (int)((deadline - now) / 1000000) + 1;
	}
	return ring_wait(r, need, left);
}

/**
 * bench_peek() - wait for the next record on a consumer handle
 * @rx:		consumer handle
 * @rec:	out, as for ring_peek()
 * @flags:	BENCH_POLL to spin, else sleep on the wakeup descriptor
 * @deadline:	absolute CLOCK_MONOTONIC ns, 0 for none
 *
 * Return: 0, -ETIMEDOUT, or ring_peek()'s error
 */
static int bench_peek(struct ring *rx, struct ring_rec *rec,
		      unsigned int flags, uint64_t deadline)
{
	int rc;

	while ((rc = ring_peek(rx, rec)) == -EAGAIN) {
		rc = bench_until(rx, 0, flags, deadline);
		if (rc < 0)
			return rc;
	}
	return rc;
}

static uint64_t bench_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? 0 :
		util_now_ns() + (uint64_t)timeout_ms * 1000000ull;
}

/**
 * bench_produce() - produce @count records as fast as the ring takes them
 * @r:		producer handle
 * @count:	records
 * @sizes:	frame lengths, used in turn (each >= 22, <= RING_FRAME_MAX)
 * @nsizes:	entries in @sizes
 * @burst:	records per ring_flush()
 * @pause_every: flush and sleep after this many records (0: never), so a
 *		consumer falls asleep between bursts
 * @pause_us:	how long
 * @flags:	BENCH_POLL, BENCH_VERIFY
 * @timeout_ms:	give up after this long (-1: never)
 * @res:	out
 *
 * Return: 0, -ETIMEDOUT, -EINVAL
 */
int bench_produce(struct ring *r, uint64_t count, const uint32_t *sizes,
		  unsigned int nsizes, unsigned int burst,
		  unsigned int pause_every, unsigned int pause_us,
		  unsigned int flags, int timeout_ms, struct bench_result *res)
{
	uint64_t deadline = bench_deadline(timeout_ms), t0, seq;
	unsigned int inburst = 0;
	uint8_t *p;
	int rc;

	memset(res, 0, sizeof(*res));
	if (!nsizes || !burst)
		return -EINVAL;
	for (unsigned int i = 0; i < nsizes; i++)
		if (sizes[i] < BENCH_HDR_LEN || sizes[i] > RING_FRAME_MAX)
			return -EINVAL;
	for (uint32_t i = 0; i < sizeof(bench_src); i++)
		bench_src[i] = (uint8_t)(i * 7);

	t0 = util_now_ns();
	for (seq = 0; seq < count; seq++) {
		uint32_t len = sizes[seq % nsizes];

		while ((rc = ring_reserve(r, RING_VNET_HDR_LEN + len, &p)) ==
		       -ENOBUFS) {
			ring_flush(r);
			inburst = 0;
			rc = bench_until(r, RING_VNET_HDR_LEN + len, flags,
					 deadline);
			if (rc < 0)
				goto out;
		}
		if (rc < 0)
			goto out;
		bench_fill(p, seq, len, flags);
		ring_commit(r, RING_VNET_HDR_LEN + len);
		res->bytes += len;
		if (++inburst == burst) {
			ring_flush(r);
			inburst = 0;
		}
		if (pause_every && (seq + 1) % pause_every == 0) {
			ring_flush(r);
			inburst = 0;
			usleep(pause_us);
		}
	}
	rc = 0;
out:
	ring_flush(r);
	res->records = seq;
	res->elapsed_ns = util_now_ns() - t0;
	return rc;
}

/**
 * bench_consume() - consume and check @count records
 * @r:		consumer handle
 * @count:	records to wait for
 * @sizes:	the producer's schedule of frame lengths
 * @nsizes:	entries in @sizes
 * @flags:	BENCH_POLL, BENCH_VERIFY
 * @timeout_ms:	give up after this long without the whole count (-1: never);
 *		a lost wakeup shows up as -ETIMEDOUT
 * @res:	out
 *
 * One ring_release() per 64 records or per quarter of the ring, whichever
 * comes first, as the switch releases an A2H burst (64 frames or 1 MiB of
 * a 4 MiB ring). A count alone would hold the whole ring when 64 records
 * do not fit in it (64 KiB frames: 63 fit in 4 MiB): the producer would
 * then wait for every lap to drain, and the two sides take turns instead
 * of running at once.
 *
 * Return: 0, -ETIMEDOUT, -EINVAL
 */
int bench_consume(struct ring *r, uint64_t count, const uint32_t *sizes,
		  unsigned int nsizes, unsigned int flags, int timeout_ms,
		  struct bench_result *res)
{
	uint64_t deadline = bench_deadline(timeout_ms), t0, seq = 0;
	uint64_t burst_bytes = ring_data_size(r) / 4, held = 0;
	struct ring_rec rec;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	if (!nsizes)
		return -EINVAL;
	t0 = util_now_ns();
	while (seq < count) {
		unsigned int n = 0;

		while (seq < count && ring_peek(r, &rec) == 0) {
			const uint8_t *f = rec.frame;

			if (!(flags & BENCH_VERIFY)) {
				memcpy(bench_sink, rec.frame, rec.frame_len);
				f = bench_sink;
			}
			if (!bench_check(f, rec.frame_len, seq,
					 sizes[seq % nsizes], flags))
				bench_bad(res, seq);
			res->bytes += rec.frame_len;
			seq++;
			held += RING_REC_SIZE(RING_VNET_HDR_LEN + rec.frame_len);
			if (++n == 64 || held >= burst_bytes) {
				ring_release(r);
				n = 0;
				held = 0;
			}
		}
		ring_release(r);
		held = 0;
		if (seq == count)
			break;
		rc = bench_until(r, 0, flags, deadline);
		if (rc < 0)
			break;
	}
	res->records = seq;
	res->elapsed_ns = util_now_ns() - t0;
	return rc;
}

/**
 * bench_ping() - send a record, wait for its echo, @count times
 * @tx:		producer handle towards the pong side
 * @rx:		consumer handle from the pong side
 * @count:	round trips
 * @len:	frame length
 * @flags:	BENCH_POLL to spin while waiting, else sleep on the eventfd
 * @timeout_ms:	for the whole run (-1: none)
 * @rtt_ns:	@count round-trip times, out (may be NULL)
 * @res:	out
 *
 * Return: 0, -ETIMEDOUT, -EINVAL, -ENOBUFS
 */
int bench_ping(struct ring *tx, struct ring *rx, uint64_t count, uint32_t len,
	       unsigned int flags, int timeout_ms, uint64_t *rtt_ns,
	       struct bench_result *res)
{
	uint64_t deadline = bench_deadline(timeout_ms), t0, t, seq;
	struct ring_rec rec;
	uint8_t *p;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	if (len < BENCH_HDR_LEN || len > RING_FRAME_MAX)
		return -EINVAL;
	t0 = util_now_ns();
	for (seq = 0; seq < count; seq++) {
		t = util_now_ns();
		rc = ring_reserve(tx, RING_VNET_HDR_LEN + len, &p);
		if (rc < 0)
			break;
		bench_fill(p, seq, len, 0);
		ring_commit(tx, RING_VNET_HDR_LEN + len);
		ring_flush(tx);
		rc = bench_peek(rx, &rec, flags, deadline);
		if (rc < 0)
			break;
		memcpy(bench_sink, rec.frame, rec.frame_len);
		if (!bench_check(bench_sink, rec.frame_len, seq, len, 0))
			bench_bad(res, seq);
		ring_release(rx);
		if (rtt_ns)
			rtt_ns[seq] = util_now_ns() - t;
		res->bytes += len;
	}
	res->records = seq;
	res->elapsed_ns = util_now_ns() - t0;
	return rc;
}

/**
 * bench_pong() - echo @count records from @rx back on @tx
 * @rx:		consumer handle from the ping side
 * @tx:		producer handle towards it
 * @count:	records
 * @flags:	BENCH_POLL to spin while waiting, else sleep on the eventfd
 * @timeout_ms:	for the whole run (-1: none)
 * @res:	out
 *
 * Return: 0, -ETIMEDOUT, -ENOBUFS
 */
int bench_pong(struct ring *rx, struct ring *tx, uint64_t count,
	       unsigned int flags, int timeout_ms, struct bench_result *res)
{
	uint64_t deadline = bench_deadline(timeout_ms), t0, seq;
	struct ring_rec rec;
	uint8_t *p;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	t0 = util_now_ns();
	for (seq = 0; seq < count; seq++) {
		rc = bench_peek(rx, &rec, flags, deadline);
		if (rc < 0)
			break;
		rc = ring_reserve(tx, RING_VNET_HDR_LEN + rec.frame_len, &p);
		if (rc < 0)
			break;
		memcpy(p, &rec.vnet, RING_VNET_HDR_LEN);
		memcpy(p + RING_VNET_HDR_LEN, rec.frame, rec.frame_len);
		ring_commit(tx, RING_VNET_HDR_LEN + rec.frame_len);
		ring_release(rx);
		ring_flush(tx);
		res->bytes += rec.frame_len;
	}
	res->records = seq;
	res->elapsed_ns = util_now_ns() - t0;
	return rc;
}

/**
 * bench_sock_io() - one send() or recv() through bench_sink, again on EINTR
 * @fd:		blocking socket
 * @tx:		1 to send @len bytes of bench_sink, 0 to receive into it
 * @len:	bytes to send, or room to receive into
 *
 * Return: as send() or recv(): bytes moved, or -1 with errno set
 */
static ssize_t bench_sock_io(int fd, int tx, size_t len)
{
	ssize_t n;

	do
		n = tx ? send(fd, bench_sink, len, 0) :
			 recv(fd, bench_sink, len, 0);
	while (n < 0 && errno == EINTR);
	return n;
}

/**
 * bench_sock_send() - the producer's transfer over a socket, for scale
 * @fd:		blocking SOCK_SEQPACKET (or DGRAM) socket
 * @count:	messages
 * @len:	frame length; each message is a vnet header + frame, as a record
 * @res:	out
 *
 * Return: 0 or -errno
 */
int bench_sock_send(int fd, uint64_t count, uint32_t len,
		    struct bench_result *res)
{
	uint64_t t0, seq;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	if (len < BENCH_HDR_LEN || len > RING_FRAME_MAX)
		return -EINVAL;
	for (uint32_t i = 0; i < sizeof(bench_src); i++)
		bench_src[i] = (uint8_t)(i * 7);
	t0 = util_now_ns();
	for (seq = 0; seq < count; seq++) {
		bench_fill(bench_sink, seq, len, 0);
		if (bench_sock_io(fd, 1, RING_VNET_HDR_LEN + len) < 0) {
			rc = -errno;
			break;
		}
		res->bytes += len;
	}
	res->records = seq;
	res->elapsed_ns = util_now_ns() - t0;
	return rc;
}

/**
 * bench_sock_recv() - the consumer's transfer over a socket, for scale
 * @fd:		blocking socket
 * @count:	messages
 * @len:	frame length the sender uses
 * @res:	out
 *
 * Return: 0 or -errno
 */
int bench_sock_recv(int fd, uint64_t count, uint32_t len,
		    struct bench_result *res)
{
	uint64_t t0, seq;
	ssize_t n;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	t0 = util_now_ns();
	for (seq = 0; seq < count; seq++) {
		n = bench_sock_io(fd, 0, sizeof(bench_sink));
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0) {
			rc = -EPIPE;
			break;
		}
		if (n < RING_VNET_HDR_LEN ||
		    !bench_check(bench_sink + RING_VNET_HDR_LEN,
				 (uint32_t)n - RING_VNET_HDR_LEN, seq, len, 0))
			bench_bad(res, seq);
		res->bytes += (uint64_t)n - RING_VNET_HDR_LEN;
	}
	res->records = seq;
	res->elapsed_ns = util_now_ns() - t0;
	return rc;
}
