// SPDX-License-Identifier: MIT
/* fuzz_ring.c - seed-driven fuzzer of the ring's hostile surfaces, under sanitizers
 *
 * DOC: Theory of operation
 *
 * A standalone program (not part of the cffi extension) built with ring.c
 * under -fsanitize=address,undefined (scripts/fuzz.sh). The harness owns one
 * side of a ring through the real API and plays the other side, the
 * partition agent, as a hostile peer that maps the memfd itself. Every run
 * is a sequence of episodes; episode k uses seed SEED + k and is a fixed
 * number of steps, so one seed replays exactly (the "race" mode excepted:
 * its peer is a second process).
 *
 * Modes (-m):
 *  cons  the harness is the daemon's consumer; the hostile producer writes
 *        positions (misaligned, backwards, beyond), record headers, vnet
 *        headers, PADs, random bytes, and well-formed records. After every
 *        call: each accepted record obeys ring.h rules 3 and 4 and lies in
 *        the data area and within the last producer position the consumer
 *        could have accepted; positions only grow; ring_violations() is the
 *        sum of the drops; the records counter is what the harness got.
 *  prod  the harness is the daemon's producer; the hostile consumer writes
 *        cons and the waiting flags. Reservations lie in the data area,
 *        the bytes the consumer has not released (by any position it
 *        published) never change, "full" is right whenever the harness
 *        knows the consumer position the producer will load.
 *  race  a forked child scribbles over the shared memory while the parent
 *        consumes, then while the parent produces; only what holds under a
 *        racing peer is checked (private copies, bounds, the counters).
 *  fds   the harness plays the agent's descriptors: clears O_NONBLOCK on
 *        its ends, reopens them through /proc/self/fd, fills and resizes
 *        the pipes; the daemon's calls must return in time and its ends
 *        stay O_NONBLOCK.
 *
 * Every call into the ring is timed (a call over the bound fails the run)
 * and a watchdog alarm catches a call that never returns. A failure prints
 * the seed and the exact command that replays it, and exits 1. The summary
 * is one JSON object on stdout.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ring.h"
#include "fuzz.h"

#define FZ_STEPS_DEFAULT	2000u
#define FZ_BOUND_NS		1000000000ull	/* one call may take this long */
#define FZ_WATCHDOG_S		10u		/* a step that never ends */
#define FZ_CTRL			RING_CTRL_SIZE
#define FZ_REC_HDR		sizeof(struct ring_rec_hdr)

enum fz_mode { FZ_CONS, FZ_PROD, FZ_RACE, FZ_FDS };
static const char *const fz_mode_names[] = { "cons", "prod", "race", "fds",
					      NULL };

/* Run state a failure report needs beside fuzz_run, set as the run goes. */
static struct {
	uint64_t step;
} fz;

/**
 * struct fz_totals - counters of the whole run, for the summary
 * @steps:	steps run, all episodes
 * @calls:	ring calls made and timed
 * @accepted:	records the consumer handed out (peek or write_fd)
 * @produced:	records the producer committed
 * @pads:	PADs written or skipped
 * @skipped:	bytes the consumer skipped after bad headers
 * @full:	reservations refused for want of room
 * @kicks:	wakeup writes
 * @eagain:	ring_write_fd() calls refused by a full descriptor
 * @fd_msgs:	frames read back from the write_fd socket and checked
 * @max_call_ns: the slowest call
 * @drops:	violations by enum ring_drop reason
 */
static struct fz_totals {
	uint64_t steps, calls, accepted, produced, pads, skipped;
	uint64_t full, kicks, eagain, fd_msgs, max_call_ns;
	uint64_t drops[RING_DROP__MAX];
} tot;

/* PRNG ---------------------------------------------------------------------- */

/**
 * fz_pct() - true with probability @pct percent
 * @s:		state
 * @pct:	0..100
 *
 * Return: 1 or 0
 */
static int fz_pct(uint64_t *s, unsigned int pct)
{
	return fuzz_below(s, 100) < pct;
}

/**
 * fz_fill() - random bytes
 * @s:		state
 * @p:		buffer
 * @n:		bytes
 */
static void fz_fill(uint64_t *s, void *p, size_t n)
{
	uint8_t *b = p;

	while (n >= 8) {
		uint64_t v = fuzz_rand(s);

		memcpy(b, &v, 8);
		b += 8;
		n -= 8;
	}
	while (n--)
		*b++ = (uint8_t)fuzz_rand(s);
}

/* Failure, timing ------------------------------------------------------------ */

/**
 * fz_fail() - report a finding with its replay command and exit 1
 * @fmt:	printf format of what went wrong
 */
static void __attribute__((format(printf, 1, 2), noreturn))
fz_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL fuzz_ring mode=%s seed=%" PRIu64 " step=%" PRIu64
		": ", fz_mode_names[fuzz_run.mode], fuzz_run.seed, fz.step);
	va_start(ap, fmt);
	fuzz_vfail(fmt, ap);
}

/**
 * fz_watchdog() - SIGALRM handler: a step never ended, a call hangs
 * @sig:	SIGALRM
 */
static void fz_watchdog(int sig)
{
	static const char msg[] = "FAIL fuzz_ring: a step ran past the watchdog "
				  "(a ring call hangs)\nreplay: ";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0 ||
	    write(2, fuzz_run.replay, strlen(fuzz_run.replay)) < 0 || write(2, "\n", 1) < 0)
		_exit(1);
	_exit(1);
}

/*
 * FZ_CALL() - make one ring call, timed: it must return within @extra_ms
 * (a timeout it was given) plus FZ_BOUND_NS.
 */
#define FZ_CALL(extra_ms, expr) ({					\
	uint64_t t0_ = fuzz_now_ns();					\
	__typeof__(expr) rv_ = (expr);					\
	uint64_t dt_ = fuzz_now_ns() - t0_;				\
	tot.calls++;							\
	if (dt_ > tot.max_call_ns)					\
		tot.max_call_ns = dt_;					\
	if (dt_ > FZ_BOUND_NS + (uint64_t)(extra_ms) * 1000000ull)	\
		fz_fail("%s took %" PRIu64 " ms", #expr, dt_ / 1000000);	\
	rv_;								\
})

/* The ring under test -------------------------------------------------------- */

/**
 * struct fz_ring - one ring: the handle under test and the hostile view
 * @fds:	every descriptor of the ring
 * @r:		the handle under test (the daemon's side)
 * @base:	the handle's own mapping, found in /proc/self/maps
 * @hc:		hostile view of the control block
 * @hd:		hostile view of the data area
 * @size:	data area size
 * @mask:	@size - 1
 * @devnull:	/dev/null, for ring_write_fd()
 * @sock:	SOCK_SEQPACKET pair: [0] given to write_fd/read_fd, [1] the
 *		harness's end
 */
struct fz_ring {
	struct ring_fds fds;
	struct ring *r;
	uint8_t *base;
	struct ring_ctrl *hc;
	uint8_t *hd;
	uint64_t size;
	uint64_t mask;
	int devnull;
	int sock[2];
};

/**
 * fz_mappings() - where the memfds of rings are mapped, of one length
 * @len:	mapping length
 * @at:		their start addresses, out
 * @max:	room in @at
 *
 * ring_attach() mmaps by itself; the harness finds that mapping (the one
 * that is new after the call) to check that every frame pointer lies
 * inside its data area.
 *
 * Return: how many there are
 */
static int fz_mappings(size_t len, uintptr_t *at, int max)
{
	FILE *f = fopen("/proc/self/maps", "r");
	uintptr_t lo, hi;
	char line[512];
	int n = 0;

	if (!f)
		fz_fail("open /proc/self/maps: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (!strstr(line, "memfd:vnetshare-ring") ||
		    sscanf(line, "%" SCNxPTR "-%" SCNxPTR, &lo, &hi) != 2 ||
		    hi - lo != len)
			continue;
		if (n == max)
			fz_fail("more than %d ring mappings", max);
		at[n++] = lo;
	}
	fclose(f);
	return n;
}

/**
 * fz_new_mapping() - the one ring mapping that is not in @old
 * @len:	mapping length
 * @old:	mappings before ring_attach()
 * @nold:	entries in @old
 *
 * Return: its start
 */
static uint8_t *fz_new_mapping(size_t len, const uintptr_t *old, int nold)
{
	uintptr_t now[16], found = 0;
	int n = fz_mappings(len, now, 16), k = 0;

	for (int i = 0; i < n; i++) {
		int seen = 0;

		for (int j = 0; j < nold; j++)
			seen |= now[i] == old[j];
		if (!seen) {
			found = now[i];
			k++;
		}
	}
	if (k != 1)
		fz_fail("%d new ring mappings after ring_attach(), want 1", k);
	return (uint8_t *)found;
}

/**
 * fz_ring_open() - make a ring, attach the side under test, map a hostile view
 * @fr:		out
 * @size:	data area size
 * @role:	role of the handle under test
 * @start:	free-running position both sides start at (tests wrapping)
 */
static void fz_ring_open(struct fz_ring *fr, uint64_t size, int role,
			 uint64_t start)
{
	struct ring_end end;
	uintptr_t old[16];
	int rc, nold;
	void *h;

	memset(fr, 0, sizeof(*fr));
	rc = ring_create(size, &fr->fds);
	if (rc)
		fz_fail("ring_create: %s", strerror(-rc));
	h = mmap(NULL, FZ_CTRL + size, PROT_READ | PROT_WRITE, MAP_SHARED,
		 fr->fds.memfd, 0);
	if (h == MAP_FAILED)
		fz_fail("mmap: %s", strerror(errno));
	fr->hc = h;
	fr->hd = (uint8_t *)h + FZ_CTRL;
	fr->size = size;
	fr->mask = size - 1;
	fr->hc->prod = start;
	fr->hc->cons = start;
	ring_fds_end(&fr->fds, role, &end);
	nold = fz_mappings(FZ_CTRL + size, old, 16);
	rc = ring_attach(&fr->r, &end, role, size);
	if (rc)
		fz_fail("ring_attach: %s", strerror(-rc));
	fr->base = fz_new_mapping(FZ_CTRL + size, old, nold);
	fr->devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fr->devnull < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC,
		       0, fr->sock) < 0)
		fz_fail("devnull/socketpair: %s", strerror(errno));
}

/**
 * fz_ring_close() - detach, unmap, close everything of a ring
 * @fr:		ring
 */
static void fz_ring_close(struct fz_ring *fr)
{
	ring_detach(fr->r);
	munmap(fr->hc, FZ_CTRL + fr->size);
	close(fr->fds.memfd);
	close(fr->fds.data_rd);
	close(fr->fds.data_wr);
	close(fr->fds.space_rd);
	close(fr->fds.space_wr);
	close(fr->devnull);
	close(fr->sock[0]);
	close(fr->sock[1]);
}

/**
 * fz_check_counters() - the counters every handle keeps must agree
 * @r:		handle
 * @role:	its role: a producer only counts position drops
 */
static void fz_check_counters(struct ring *r, int role)
{
	struct ring_stats st;
	uint64_t sum = 0;

	ring_get_stats(r, &st);
	for (unsigned int i = 0; i < RING_DROP__MAX; i++) {
		sum += st.drops[i];
		if (role == RING_PRODUCER && i > RING_DROP_POS_BEYOND &&
		    st.drops[i])
			fz_fail("producer counted %s", ring_drop_name(i));
	}
	if (ring_violations(r) != sum)
		fz_fail("ring_violations() %" PRIu64 " != sum of drops %" PRIu64,
			ring_violations(r), sum);
}

/**
 * fz_fold_stats() - add an episode's ring counters to the run's
 * @r:		handle
 */
static void fz_fold_stats(struct ring *r)
{
	struct ring_stats st;

	ring_get_stats(r, &st);
	for (unsigned int i = 0; i < RING_DROP__MAX; i++)
		tot.drops[i] += st.drops[i];
	tot.pads += st.pads;
	tot.skipped += st.skipped_bytes;
	tot.full += st.full;
	tot.kicks += st.kicks;
}

/**
 * fz_vnet_ok() - ring.h rule 4, written again independently of ring.c
 * @v:		vnet header
 * @frame_len:	frame length
 *
 * Return: 1 if a consumer may hand out a record with this header
 */
static int fz_vnet_ok(const struct ring_vnet_hdr *v, uint32_t frame_len)
{
	unsigned int base = v->gso_type & 0x7f;
	int gso = v->gso_type != RING_VNET_GSO_NONE;

	if (v->flags & ~(RING_VNET_F_NEEDS_CSUM | RING_VNET_F_DATA_VALID))
		return 0;
	if (v->gso_type == RING_VNET_GSO_ECN)
		return 0;
	if (gso && base != RING_VNET_GSO_TCPV4 && base != RING_VNET_GSO_TCPV6 &&
	    base != RING_VNET_GSO_UDP_L4)
		return 0;
	if (gso && v->gso_size == 0)
		return 0;
	if (v->hdr_len > frame_len)
		return 0;
	if ((v->flags & RING_VNET_F_NEEDS_CSUM) &&
	    (uint64_t)v->csum_start + v->csum_offset + 2 > frame_len)
		return 0;
	return 1;
}

/**
 * fz_check_rec() - what holds for every record a consumer hands out
 * @fr:		ring
 * @rec:	the record
 * @floor:	where the consumer stood: the record may not start before
 * @racing:	the peer may be writing now: skip the checks against memory
 */
static void fz_check_rec(const struct fz_ring *fr, const struct ring_rec *rec,
			 uint64_t floor, int racing)
{
	uint64_t off = rec->pos & fr->mask, rsize;
	const uint8_t *want = fr->base + FZ_CTRL + off + FZ_REC_HDR +
			      RING_VNET_HDR_LEN;
	struct ring_rec_hdr h;

	if (rec->frame_len < RING_ETH_HLEN || rec->frame_len > RING_FRAME_MAX)
		fz_fail("frame_len %u out of range", rec->frame_len);
	if (!fz_vnet_ok(&rec->vnet, rec->frame_len))
		fz_fail("invalid vnet header accepted: flags %#x gso %#x hdr_len "
			"%u gso_size %u csum %u+%u frame_len %u",
			rec->vnet.flags, rec->vnet.gso_type, rec->vnet.hdr_len,
			rec->vnet.gso_size, rec->vnet.csum_start,
			rec->vnet.csum_offset, rec->frame_len);
	if (rec->pos % RING_ALIGN)
		fz_fail("record position %#" PRIx64 " misaligned", rec->pos);
	if ((int64_t)(rec->pos - floor) < 0)
		fz_fail("record at %#" PRIx64 " before the consumer's position "
			"%#" PRIx64, rec->pos, floor);
	rsize = RING_REC_SIZE(rec->frame_len + RING_VNET_HDR_LEN);
	if (off + rsize > fr->size)
		fz_fail("record at offset %#" PRIx64 " size %" PRIu64
			" runs past the data area", off, rsize);
	if (rec->frame != want)
		fz_fail("frame pointer %p, record says %p", (void *)rec->frame,
			(const void *)want);
	if (racing)
		return;
	memcpy(&h, fr->hd + off, sizeof(h));
	if (h.len != rec->frame_len + RING_VNET_HDR_LEN || h.flags ||
	    h.vnet_len != RING_VNET_HDR_LEN)
		fz_fail("accepted record header len %u flags %#x vnet_len %u",
			h.len, h.flags, h.vnet_len);
	if (memcmp(&rec->vnet, fr->hd + off + FZ_REC_HDR, RING_VNET_HDR_LEN) ||
	    memcmp(rec->l2, rec->frame, RING_ETH_HLEN))
		fz_fail("private copies differ from the record");
}

/* Records as a (hostile) producer writes them ------------------------------- */

/**
 * fz_good_vnet() - a vnet header that passes rule 4 for @frame_len
 * @s:		PRNG
 * @v:		out
 * @frame_len:	frame length (>= 14)
 */
static void fz_good_vnet(uint64_t *s, struct ring_vnet_hdr *v,
			 uint32_t frame_len)
{
	static const uint8_t gso[] = { RING_VNET_GSO_NONE, RING_VNET_GSO_TCPV4,
				       RING_VNET_GSO_TCPV6, RING_VNET_GSO_UDP_L4,
				       RING_VNET_GSO_TCPV4 | RING_VNET_GSO_ECN };

	memset(v, 0, sizeof(*v));
	v->flags = (uint8_t)fuzz_below(s, 4);
	v->gso_type = gso[fuzz_below(s, sizeof(gso))];
	if (v->gso_type)
		v->gso_size = (uint16_t)(1 + fuzz_below(s, 9000));
	v->hdr_len = (uint16_t)fuzz_below(s, frame_len + 1 < 65536 ?
					     frame_len + 1 : 65536);
	if (v->flags & RING_VNET_F_NEEDS_CSUM) {
		uint32_t room = frame_len - 2;

		v->csum_start = (uint16_t)fuzz_below(s, (room < 65535 ? room : 65535) + 1);
		room -= v->csum_start;
		v->csum_offset = (uint16_t)fuzz_below(s, (room < 65535 ? room : 65535) + 1);
	}
	v->num_buffers = (uint16_t)fuzz_rand(s);
}

/**
 * fz_frame_len() - a frame length as traffic has them, small ones mostly
 * @s:		PRNG
 *
 * Return: 14..RING_FRAME_MAX
 */
static uint32_t fz_frame_len(uint64_t *s)
{
	switch (fuzz_below(s, 8)) {
	case 0:
		return RING_ETH_HLEN + (uint32_t)fuzz_below(s, 8);
	case 1:
		return RING_FRAME_MAX - (uint32_t)fuzz_below(s, 128);
	case 2:
		return RING_ETH_HLEN + (uint32_t)fuzz_below(s, RING_FRAME_MAX -
							   RING_ETH_HLEN + 1);
	default:
		return RING_ETH_HLEN + (uint32_t)fuzz_below(s, 1501);
	}
}

/**
 * fz_put_rec() - write a record header, a vnet header and a frame
 * @fr:		ring
 * @pos:	ring position of the record
 * @h:		record header
 * @v:		vnet header
 * @s:		PRNG (frame bytes)
 * @frame_len:	bytes of frame to write, clipped to the data area
 */
static void fz_put_rec(struct fz_ring *fr, uint64_t pos,
		       const struct ring_rec_hdr *h,
		       const struct ring_vnet_hdr *v, uint64_t *s,
		       uint32_t frame_len)
{
	uint64_t off = pos & fr->mask;
	uint64_t room = fr->size - off;

	memcpy(fr->hd + off, h, FZ_REC_HDR);
	if (room >= FZ_REC_HDR + RING_VNET_HDR_LEN)
		memcpy(fr->hd + off + FZ_REC_HDR, v, RING_VNET_HDR_LEN);
	room = room > FZ_REC_HDR + RING_VNET_HDR_LEN ?
	       room - FZ_REC_HDR - RING_VNET_HDR_LEN : 0;
	if (frame_len > room)
		frame_len = (uint32_t)room;
	/* the Ethernet header and a little of the body: the rest is stale */
	fz_fill(s, fr->hd + off + FZ_REC_HDR + RING_VNET_HDR_LEN,
		frame_len < 64 ? frame_len : 64);
}

/* Mode cons: hostile producer ------------------------------------------------ */

/**
 * struct fz_cons - a consumer episode
 * @fr:		the ring (handle under test: consumer)
 * @s:		PRNG
 * @hp:		where the hostile producer writes next
 * @bound:	largest producer position the consumer could have accepted
 * @floor:	the consumer's position: no record may start before it
 * @accepted:	records handed out, as the harness counted them
 * @fill_pipe:	the write_fd pipe is full (EAGAIN expected)
 * @pipe:	a pipe for write_fd, [1] given to the ring
 */
struct fz_cons {
	struct fz_ring fr;
	uint64_t s;
	uint64_t hp;
	uint64_t bound;
	uint64_t floor;
	uint64_t accepted;
	int pipe[2];
};

/**
 * fz_cons_observe() - before a consumer call: note the position it may take
 * @c:		episode
 *
 * The consumer takes prod if aligned and at most one ring size past what
 * it released (and not behind what it took: that only lowers it); the
 * largest such value seen is an upper bound of what it can have taken.
 */
static void fz_cons_observe(struct fz_cons *c)
{
	uint64_t p = c->fr.hc->prod, cons = c->fr.hc->cons;

	if (p % RING_ALIGN == 0 && p - cons <= c->fr.size &&
	    (int64_t)(p - c->bound) > 0)
		c->bound = p;
}

/**
 * fz_cons_peek() - peek up to @n records, check each, maybe release
 * @c:		episode
 * @n:		most peeks
 * @release:	call ring_release() after
 * @racing:	the peer races us
 */
static void fz_cons_peek(struct fz_cons *c, unsigned int n, int release,
			 int racing)
{
	struct ring_rec rec;
	int rc;

	for (unsigned int i = 0; i < n; i++) {
		if (!racing)
			fz_cons_observe(c);
		rc = FZ_CALL(0, ring_peek(c->fr.r, &rec));
		if (rc == -EAGAIN)
			break;
		if (rc)
			fz_fail("ring_peek: %d", rc);
		fz_check_rec(&c->fr, &rec, c->floor, racing);
		c->floor = rec.pos + RING_REC_SIZE(rec.frame_len +
						   RING_VNET_HDR_LEN);
		if (!racing && (int64_t)(c->floor - c->bound) > 0)
			fz_fail("record ends at %#" PRIx64 ", past any producer "
				"position the consumer could accept (%#" PRIx64 ")",
				c->floor, c->bound);
		c->accepted++;
	}
	if (release) {
		rc = FZ_CALL(0, ring_release(c->fr.r));
		if (rc)
			fz_fail("ring_release: %d", rc);
	}
}

/**
 * fz_cons_check_msgs() - read back what ring_write_fd() sent to the socket
 * @c:		episode
 *
 * Each message is one record as the TAP would get it: a valid vnet header
 * and a frame of at least 14 bytes. Filler messages (1 byte) are skipped.
 */
static void fz_cons_check_msgs(struct fz_cons *c)
{
	static uint8_t buf[RING_LEN_MAX + 1];
	struct ring_vnet_hdr v;
	ssize_t n;

	while ((n = recv(c->fr.sock[1], buf, sizeof(buf), MSG_DONTWAIT)) >= 0) {
		if (n == 1)
			continue;
		if (n < (ssize_t)(RING_VNET_HDR_LEN + RING_ETH_HLEN) ||
		    n > (ssize_t)RING_LEN_MAX)
			fz_fail("write_fd sent a message of %zd bytes", n);
		memcpy(&v, buf, sizeof(v));
		if (!fz_vnet_ok(&v, (uint32_t)(n - RING_VNET_HDR_LEN)))
			fz_fail("write_fd sent an invalid vnet header");
		tot.fd_msgs++;
	}
}

/**
 * fz_cons_write_fd() - ring_write_fd() into /dev/null, a socket, a pipe,
 * a full socket or a bad descriptor
 * @c:		episode
 * @racing:	the peer races us
 */
static void fz_cons_write_fd(struct fz_cons *c, int racing)
{
	unsigned int max = 1 + (unsigned int)fuzz_below(&c->s, 64), n = 0;
	int which = (int)fuzz_below(&c->s, 5), fd, rc;
	struct ring_stats st;
	char one = 1;

	switch (which) {
	case 0:
		fd = c->fr.devnull;
		break;
	case 1:
	case 2:		/* 2: filled up first, EAGAIN */
		fd = c->fr.sock[0];
		if (which == 2)
			while (send(fd, &one, 1, MSG_DONTWAIT) == 1)
				;
		break;
	case 3:
		fd = c->pipe[1];
		break;
	default:
		fd = -1;	/* EBADF: the record stays */
	}
	if (!racing)
		fz_cons_observe(c);
	rc = FZ_CALL(0, ring_write_fd(c->fr.r, fd, max, &n));
	if (rc && rc != -EAGAIN && rc != -EBADF)
		fz_fail("ring_write_fd: %d", rc);
	if (n > max || ((which == 2 || fd < 0) && n))
		fz_fail("ring_write_fd wrote %u (max %u) to %s", n, max,
			which == 2 ? "a full socket" : "fd -1");
	if (rc == -EAGAIN && n < max)
		tot.eagain++;
	c->accepted += n;
	/* released: the consumer stands at cons now, never behind a record
	 * it handed out (a refused write rewinds to that record alone)
	 */
	if ((int64_t)(c->fr.hc->cons - c->floor) < 0)
		fz_fail("write_fd released %#" PRIx64 ", behind %#" PRIx64,
			c->fr.hc->cons, c->floor);
	c->floor = c->fr.hc->cons;
	if (!racing) {
		if ((int64_t)(c->floor - c->bound) > 0)
			fz_fail("write_fd released %#" PRIx64 ", past any "
				"acceptable producer position %#" PRIx64,
				c->floor, c->bound);
	}
	if (which == 1 || which == 2)
		fz_cons_check_msgs(c);
	if (which == 3) {
		char buf[65536];

		while (read(c->pipe[0], buf, sizeof(buf)) > 0)
			;
	}
	ring_get_stats(c->fr.r, &st);
	if (st.records != c->accepted)
		fz_fail("records counter %" PRIu64 ", harness got %" PRIu64,
			st.records, c->accepted);
}

/**
 * fz_cons_call() - one random consumer call (or a short burst of them)
 * @c:		episode
 * @racing:	the peer races us
 */
static void fz_cons_call(struct fz_cons *c, int racing)
{
	struct ring *r = c->fr.r;
	int rc, tmo;

	switch (fuzz_below(&c->s, 10)) {
	case 0: case 1: case 2: case 3:
		fz_cons_peek(c, 1 + (unsigned int)fuzz_below(&c->s, 64),
			     fz_pct(&c->s, 80), racing);
		break;
	case 4: case 5:
		fz_cons_write_fd(c, racing);
		break;
	case 6:
		if (!racing)
			fz_cons_observe(c);
		rc = FZ_CALL(0, ring_ready(r, 0));
		if (rc != 0 && rc != 1)
			fz_fail("ring_ready: %d", rc);
		break;
	case 7:
		if (!racing)
			fz_cons_observe(c);
		rc = FZ_CALL(0, ring_arm(r, 0));
		if (rc != 0 && rc != 1)
			fz_fail("ring_arm: %d", rc);
		if (!racing && c->fr.hc->cons_waiting != (rc == 0))
			fz_fail("ring_arm %d left cons_waiting %u", rc,
				c->fr.hc->cons_waiting);
		FZ_CALL(0, (ring_disarm(r), 0));
		if (!racing && c->fr.hc->cons_waiting)
			fz_fail("ring_disarm left cons_waiting set");
		break;
	case 8:
		tmo = fz_pct(&c->s, 90) ? 0 : 1;
		if (!racing)
			fz_cons_observe(c);
		rc = FZ_CALL(tmo, ring_wait(r, 0, tmo));
		if (rc && rc != -ETIMEDOUT)
			fz_fail("ring_wait: %d", rc);
		break;
	default:
		rc = FZ_CALL(0, ring_release(r));
		if (rc)
			fz_fail("ring_release: %d", rc);
	}
	fz_check_counters(r, RING_CONSUMER);
	{
		struct ring_stats st;

		ring_get_stats(r, &st);
		if (st.records != c->accepted)
			fz_fail("records counter %" PRIu64 ", harness got %" PRIu64,
				st.records, c->accepted);
	}
}

/**
 * fz_cons_fits() - may the hostile producer write @rsize bytes at hp
 * without overwriting what the consumer has not released?
 * @c:		episode
 * @rsize:	record size
 *
 * Return: 1 if it fits
 */
static int fz_cons_fits(const struct fz_cons *c, uint64_t rsize)
{
	return c->hp + rsize - c->fr.hc->cons <= c->fr.size;
}

/**
 * fz_cons_good() - write well-formed records at hp, PAD at the end
 * @c:		episode
 * @n:		records
 */
static void fz_cons_good(struct fz_cons *c, unsigned int n)
{
	struct ring_rec_hdr h = { .vnet_len = RING_VNET_HDR_LEN };
	struct ring_vnet_hdr v;
	uint64_t off, rsize;

	for (unsigned int i = 0; i < n; i++) {
		uint32_t fl = fz_frame_len(&c->s);

		rsize = RING_REC_SIZE(fl + RING_VNET_HDR_LEN);
		off = c->hp & c->fr.mask;
		if (off + rsize > c->fr.size) {
			if (!fz_cons_fits(c, c->fr.size - off))
				return;
			h.len = (uint32_t)fuzz_rand(&c->s);
			h.flags = RING_REC_PAD;
			memcpy(c->fr.hd + off, &h, sizeof(h));
			h.flags = 0;
			c->hp += c->fr.size - off;
		}
		if (!fz_cons_fits(c, rsize))
			return;
		h.len = fl + RING_VNET_HDR_LEN;
		fz_good_vnet(&c->s, &v, fl);
		fz_put_rec(&c->fr, c->hp, &h, &v, &c->s, fl);
		c->hp += rsize;
	}
}

/**
 * fz_cons_bad() - write one record that breaks one rule (or random bytes)
 * @c:		episode
 *
 * Return: the span the producer moves on by (what it will publish)
 */
static uint64_t fz_cons_bad(struct fz_cons *c)
{
	struct ring_rec_hdr h = { .vnet_len = RING_VNET_HDR_LEN };
	uint64_t off = c->hp & c->fr.mask, span, *s = &c->s;
	uint32_t fl = fz_frame_len(s);
	struct ring_vnet_hdr v;

	h.len = fl + RING_VNET_HDR_LEN;
	fz_good_vnet(s, &v, fl);
	span = RING_REC_SIZE(h.len);
	switch (fuzz_below(s, 14)) {
	case 0:		/* unknown flag bits */
		h.flags = (uint16_t)(fuzz_rand(s) | (2u << fuzz_below(s, 15)));
		break;
	case 1:		/* len over the maximum */
		h.len = RING_LEN_MAX + 1 + (uint32_t)fuzz_below(s, 1u << 31);
		span = RING_REC_SIZE(RING_LEN_MAX);
		break;
	case 2:		/* too short for a frame */
		h.len = (uint32_t)fuzz_below(s, RING_VNET_HDR_LEN + RING_ETH_HLEN);
		span = RING_ALIGN;
		break;
	case 3:		/* vnet_len not 12 */
		do
			h.vnet_len = (uint16_t)fuzz_rand(s);
		while (h.vnet_len == RING_VNET_HDR_LEN);
		break;
	case 4:		/* runs past what is published */
		span = RING_ALIGN * (1 + fuzz_below(s, span / RING_ALIGN));
		if (span >= RING_REC_SIZE(h.len))
			span = RING_ALIGN;
		if (RING_REC_SIZE(h.len) <= RING_ALIGN)
			h.len = RING_ALIGN;
		break;
	case 5:		/* runs past the end of the data area */
		if (off + RING_ALIGN >= c->fr.size || c->fr.size - off > RING_LEN_MAX)
			break;
		h.len = (uint32_t)(c->fr.size - off) + (uint32_t)fuzz_below(s, 4096);
		if (h.len > RING_LEN_MAX)
			h.len = RING_LEN_MAX;
		span = RING_REC_SIZE(h.len);
		break;
	case 6:		/* vnet flags */
		v.flags |= (uint8_t)(4u << fuzz_below(s, 6));
		break;
	case 7:		/* gso type */
		do
			v.gso_type = (uint8_t)fuzz_rand(s);
		while (fz_vnet_ok(&v, fl));
		break;
	case 8:		/* gso size */
		v.gso_type = RING_VNET_GSO_TCPV4;
		v.gso_size = 0;
		break;
	case 9:		/* hdr_len past the frame */
		if (fl >= 65535)
			break;
		v.hdr_len = (uint16_t)(fl + 1 + fuzz_below(s, 65535 - fl));
		break;
	case 10:	/* checksum past the frame */
		v.flags |= RING_VNET_F_NEEDS_CSUM;
		v.csum_start = (uint16_t)fuzz_rand(s);
		v.csum_offset = (uint16_t)fuzz_rand(s);
		if ((uint32_t)v.csum_start + v.csum_offset + 2 <= fl)
			v.csum_start = (uint16_t)(fl - 1 > 65535 ? 65535 : fl - 1);
		break;
	case 11:	/* a PAD in the middle, maybe not published to its end */
		h.flags = RING_REC_PAD;
		span = fz_pct(s, 50) ? c->fr.size - off :
		       RING_ALIGN * (1 + fuzz_below(s, (c->fr.size - off) / RING_ALIGN));
		break;
	case 12:	/* random header and vnet header */
		fz_fill(s, &h, sizeof(h));
		fz_fill(s, &v, sizeof(v));
		span = RING_ALIGN * (1 + fuzz_below(s, 64));
		break;
	default:	/* random vnet header */
		fz_fill(s, &v, sizeof(v));
	}
	if (off + span > c->fr.size && !(h.flags & RING_REC_PAD) &&
	    fz_pct(s, 50))
		span = c->fr.size - off;
	if (!fz_cons_fits(c, span))
		return 0;
	fz_put_rec(&c->fr, c->hp, &h, &v, s, fl);
	return span;
}

/**
 * fz_hostile_wakeups() - the hostile side's act on waiting flags and wakeups
 * @s:		PRNG
 * @hc:		the shared control page
 * @kick:	the pipe end the hostile side wakes the side under test through
 * @drain:	the pipe end the side under test wakes the hostile side through
 *
 * Sets both waiting flags to anything, maybe kicks, maybe swallows every
 * pending kick.
 */
static void fz_hostile_wakeups(uint64_t *s, struct ring_ctrl *hc, int kick,
			       int drain)
{
	char buf[4096] = { 0 };

	hc->prod_waiting = (uint32_t)fuzz_rand(s);
	hc->cons_waiting = (uint32_t)fuzz_rand(s);
	if (fz_pct(s, 50) && write(kick, buf, 1) < 0 && errno != EAGAIN)
		fz_fail("kick: %s", strerror(errno));
	if (fz_pct(s, 50))
		while (read(drain, buf, sizeof(buf)) > 0)
			;
}

/**
 * fz_cons_hostile() - one random act of the hostile producer
 * @c:		episode
 */
static void fz_cons_hostile(struct fz_cons *c)
{
	struct ring_ctrl *hc = c->fr.hc;
	uint64_t *s = &c->s, cons = hc->cons, off, n;
	char buf[4096] = { 0 };

	/* after the consumer skipped ahead, write from where it stands */
	if ((int64_t)(c->hp - c->bound) < 0 || c->hp - cons > c->fr.size)
		c->hp = c->bound;
	switch (fuzz_below(s, 20)) {
	case 0: case 1: case 2: case 3: case 4: case 5:
		fz_cons_good(c, 1 + (unsigned int)fuzz_below(s, 16));
		hc->prod = c->hp;
		break;
	case 6: case 7: case 8: case 9:
		c->hp += fz_cons_bad(c);
		if (fz_pct(s, 50))
			fz_cons_good(c, 1 + (unsigned int)fuzz_below(s, 4));
		hc->prod = c->hp;
		break;
	case 10:	/* misaligned */
		hc->prod = c->hp + 1 + fuzz_below(s, RING_ALIGN - 1);
		break;
	case 11:	/* backwards */
		hc->prod = c->bound - RING_ALIGN * (1 + fuzz_below(s, 1024));
		break;
	case 12:	/* beyond one ring size */
		hc->prod = cons + c->fr.size + RING_ALIGN * (1 + fuzz_below(s, 1024));
		break;
	case 13:	/* anything */
		hc->prod = fuzz_rand(s);
		break;
	case 14:	/* forward over whatever lies there */
		n = RING_ALIGN * fuzz_below(s, c->fr.size / RING_ALIGN + 1);
		hc->prod = cons + n;
		if ((int64_t)(cons + n - c->hp) > 0)
			c->hp = cons + n;
		break;
	case 15:	/* random bytes anywhere in the data area */
		n = 1 + fuzz_below(s, sizeof(buf));
		off = fuzz_below(s, c->fr.size - n + 1);
		fz_fill(s, buf, n);
		memcpy(c->fr.hd + off, buf, n);
		break;
	case 16:	/* fill the ring to the last byte */
		fz_cons_good(c, 1000);
		hc->prod = c->hp;
		break;
	case 17:	/* waiting flags, kicks */
		fz_hostile_wakeups(s, hc, c->fr.fds.data_wr, c->fr.fds.space_rd);
		break;
	case 18:	/* the fields a side reads once, at attach */
		hc->magic = fuzz_rand(s);
		hc->data_size = fuzz_rand(s);
		hc->version = (uint32_t)fuzz_rand(s);
		break;
	default:	/* republish */
		hc->prod = c->hp;
	}
}

/**
 * fz_start_pos() - a position both sides start at, near a wrap sometimes
 * @s:		PRNG
 *
 * Return: the position
 */
static uint64_t fz_start_pos(uint64_t *s)
{
	switch (fuzz_below(s, 3)) {
	case 0:
		return 0;
	case 1:		/* the u64 wraps during the episode */
		return (uint64_t)0 - RING_ALIGN * fuzz_below(s, 1u << 16);
	default:
		return fuzz_rand(s) & ~(uint64_t)(RING_ALIGN - 1);
	}
}

/**
 * fz_run_cons() - one consumer episode against a hostile producer
 * @seed:	episode seed
 * @steps:	steps
 */
static void fz_run_cons(uint64_t seed, unsigned int steps)
{
	struct fz_cons c = { .s = seed };
	uint64_t size = RING_SIZE_MIN << fuzz_below(&c.s, 2);
	uint64_t start = fz_start_pos(&c.s);

	fz_ring_open(&c.fr, size, RING_CONSUMER, start);
	if (pipe2(c.pipe, O_NONBLOCK | O_CLOEXEC) < 0)
		fz_fail("pipe: %s", strerror(errno));
	fcntl(c.pipe[1], F_SETPIPE_SZ, 4096);
	c.hp = c.bound = c.floor = start;
	for (fz.step = 0; fz.step < steps; fz.step++) {
		alarm(FZ_WATCHDOG_S);
		if (fz_pct(&c.s, 60))
			fz_cons_hostile(&c);
		fz_cons_call(&c, 0);
		tot.steps++;
	}
	tot.accepted += c.accepted;
	fz_fold_stats(c.fr.r);
	close(c.pipe[0]);
	close(c.pipe[1]);
	fz_ring_close(&c.fr);
}

/* Mode prod: hostile consumer ------------------------------------------------ */

/**
 * struct fz_prod - a producer episode
 * @fr:		the ring (handle under test: producer)
 * @s:		PRNG
 * @own:	the producer's position, as the harness follows it
 * @own_known:	@own is exact (not after ring_read_fd() until a flush)
 * @mx:		largest consumer position the producer could have accepted
 * @open:	payload bytes of the open reservation, 0 if none
 * @full:	ENOBUFS answers seen
 * @shadow:	the data area before the producer's call
 */
struct fz_prod {
	struct fz_ring fr;
	uint64_t s;
	uint64_t own;
	int own_known;
	uint64_t mx;
	uint32_t open;
	uint64_t full;
	uint8_t *shadow;
};

/**
 * fz_prod_observe() - before a producer call: note the cons it may take
 * @p:		episode
 *
 * The producer takes cons if aligned, not behind what it took, and not
 * past what it published; the largest such value seen bounds what it took.
 */
static void fz_prod_observe(struct fz_prod *p)
{
	uint64_t c = p->fr.hc->cons, pub = p->fr.hc->prod;

	if (c % RING_ALIGN == 0 && (int64_t)(pub - c) >= 0 &&
	    (int64_t)(c - p->mx) > 0)
		p->mx = c;
}

/**
 * fz_prod_room() - would a record of @len fit, were the consumer at mx?
 * @p:		episode
 * @len:	payload bytes
 *
 * Return: 1 if it fits
 */
static int fz_prod_room(const struct fz_prod *p, uint32_t len)
{
	uint64_t need = RING_REC_SIZE(len), off = p->own & p->fr.mask;

	if (off + need > p->fr.size)
		need += p->fr.size - off;
	return p->own - p->mx + need <= p->fr.size;
}

/**
 * fz_prod_before() - snapshot the data area before a producer call
 * @p:		episode
 */
static void fz_prod_before(struct fz_prod *p)
{
	fz_prod_observe(p);
	memcpy(p->shadow, p->fr.hd, p->fr.size);
}

/**
 * fz_prod_after() - the producer left the unreleased bytes alone
 * @p:		episode
 * @pub:	what it had published before the call
 *
 * Ring positions [mx, pub) hold records the consumer has not released by
 * any position it published: not one of their bytes may change.
 */
static void fz_prod_after(struct fz_prod *p, uint64_t pub)
{
	uint64_t n = pub - p->mx, off = p->mx & p->fr.mask, first;

	if (n > p->fr.size)
		fz_fail("producer published %#" PRIx64 ", more than a ring size "
			"past any consumer position it could accept (%#" PRIx64 ")",
			pub, p->mx);
	first = n < p->fr.size - off ? n : p->fr.size - off;
	if (memcmp(p->shadow + off, p->fr.hd + off, first) ||
	    memcmp(p->shadow, p->fr.hd, n - first))
		fz_fail("producer overwrote unreleased ring bytes in [%#" PRIx64
			", %#" PRIx64 ")", p->mx, pub);
	fz_check_counters(p->fr.r, RING_PRODUCER);
}

/**
 * fz_prod_reserve() - ring_reserve() and maybe ring_commit(), checked
 * @p:		episode
 */
static void fz_prod_reserve(struct fz_prod *p)
{
	uint32_t len = RING_VNET_HDR_LEN + fz_frame_len(&p->s), clen;
	uint64_t pub = p->fr.hc->prod, off, pad = 0;
	uint8_t *pl = NULL;
	int rc, room, exact;

	if (fz_pct(&p->s, 2))
		len = RING_LEN_MAX + 1 + (uint32_t)fuzz_below(&p->s, 100);
	fz_prod_before(p);
	exact = p->own_known && p->fr.hc->cons == p->mx;
	room = p->own_known && fz_prod_room(p, len);
	rc = FZ_CALL(0, ring_reserve(p->fr.r, len, &pl));
	if (len > RING_LEN_MAX) {
		if (rc != -EINVAL)
			fz_fail("ring_reserve(%u) = %d, want -EINVAL", len, rc);
		fz_prod_after(p, pub);
		return;
	}
	if (rc == -ENOBUFS) {
		p->full++;
		p->open = 0;
		if (exact && room)
			fz_fail("ring_reserve(%u) full, but own %#" PRIx64 " cons "
				"%#" PRIx64 " leave room", len, p->own, p->mx);
		fz_prod_after(p, pub);
		return;
	}
	if (rc)
		fz_fail("ring_reserve: %d", rc);
	if (p->own_known && !room)
		fz_fail("ring_reserve(%u) succeeded over unreleased bytes: own %#"
			PRIx64 " cons <= %#" PRIx64, len, p->own, p->mx);
	off = (uint64_t)(pl - FZ_REC_HDR - (p->fr.base + FZ_CTRL));
	if (pl < p->fr.base + FZ_CTRL + FZ_REC_HDR || off % RING_ALIGN ||
	    off + RING_REC_SIZE(len) > p->fr.size)
		fz_fail("reservation at %p (offset %#" PRIx64 ", %u bytes) is not "
			"inside the data area", (void *)pl, off, len);
	if (p->own_known) {
		if (off != (p->own & p->fr.mask)) {
			pad = p->fr.size - (p->own & p->fr.mask);
			if (off)
				fz_fail("reservation at offset %#" PRIx64 ", own at "
					"%#" PRIx64, off, p->own & p->fr.mask);
		}
		p->own += pad;
		/* what the harness writes now must stay clear of [mx, pub) */
		if (p->own + RING_REC_SIZE(len) - p->mx > p->fr.size)
			fz_fail("reservation overlaps unreleased bytes");
	}
	fz_fill(&p->s, pl, len < 256 ? len : 256);
	memset(pl + len - (len < 64 ? len : 64), 0x5a, len < 64 ? len : 64);
	p->open = len;
	fz_prod_after(p, pub);
	if (fz_pct(&p->s, 85)) {
		clen = (uint32_t)fuzz_below(&p->s, len + 2);
		if (fz_pct(&p->s, 70))
			clen = len;
		rc = FZ_CALL(0, ring_commit(p->fr.r, clen));
		if (clen > len || clen < RING_VNET_HDR_LEN + RING_ETH_HLEN) {
			if (rc != -EINVAL)
				fz_fail("ring_commit(%u) of %u = %d", clen, len, rc);
			return;
		}
		if (rc)
			fz_fail("ring_commit: %d", rc);
		p->own += RING_REC_SIZE(clen);
		p->open = 0;
		tot.produced++;
	}
}

/**
 * fz_prod_read_fd() - ring_read_fd() from a socket of random messages
 * @p:		episode
 */
static void fz_prod_read_fd(struct fz_prod *p)
{
	static uint8_t buf[RING_LEN_MAX + 100];
	uint64_t pub = p->fr.hc->prod;
	unsigned int n = 0, max = 1 + (unsigned int)fuzz_below(&p->s, 16);
	int rc, k = (int)fuzz_below(&p->s, 6);

	for (int i = 0; i < k; i++) {
		size_t len = fuzz_below(&p->s, 8) ?
			     fuzz_below(&p->s, 1600) : fuzz_below(&p->s, sizeof(buf));

		fz_fill(&p->s, buf, len < 64 ? len : 64);
		if (send(p->fr.sock[1], buf, len, MSG_DONTWAIT) < 0)
			break;
	}
	fz_prod_before(p);
	rc = FZ_CALL(0, ring_read_fd(p->fr.r, p->fr.sock[0], max, &n));
	if (rc && rc != -EAGAIN && rc != -ENOBUFS)
		fz_fail("ring_read_fd: %d", rc);
	if (n > max)
		fz_fail("ring_read_fd read %u, max %u", n, max);
	if (rc == -ENOBUFS)
		p->full++;
	tot.produced += n;
	p->own_known = 0;
	p->open = 0;
	fz_prod_after(p, pub);
}

/**
 * fz_prod_flush() - ring_flush(): it publishes exactly the producer's position
 * @p:		episode
 */
static void fz_prod_flush(struct fz_prod *p)
{
	uint64_t pub = p->fr.hc->prod;
	int rc;

	fz_prod_before(p);
	rc = FZ_CALL(0, ring_flush(p->fr.r));
	if (rc)
		fz_fail("ring_flush: %d", rc);
	fz_prod_after(p, pub);
	if (p->own_known && p->fr.hc->prod != p->own)
		fz_fail("flush published %#" PRIx64 ", own is %#" PRIx64,
			p->fr.hc->prod, p->own);
	if ((int64_t)(p->fr.hc->prod - pub) < 0 ||
	    p->fr.hc->prod % RING_ALIGN)
		fz_fail("flush published %#" PRIx64 " after %#" PRIx64,
			p->fr.hc->prod, pub);
	p->own = p->fr.hc->prod;
	p->own_known = 1;
}

/**
 * fz_prod_hostile() - one random act of the hostile consumer
 * @p:		episode
 */
static void fz_prod_hostile(struct fz_prod *p)
{
	struct ring_ctrl *hc = p->fr.hc;
	uint64_t *s = &p->s, pub = hc->prod, n;
	char buf[1024];

	switch (fuzz_below(s, 12)) {
	case 0: case 1: case 2: case 3:	/* release some, aligned */
		n = (pub - p->mx) / RING_ALIGN;
		hc->cons = p->mx + RING_ALIGN * fuzz_below(s, n + 1);
		if (fz_pct(s, 50))
			hc->cons = pub;
		break;
	case 4:		/* misaligned */
		hc->cons = p->mx + 1 + fuzz_below(s, 4096);
		if (hc->cons % RING_ALIGN == 0)
			hc->cons++;
		break;
	case 5:		/* backwards */
		hc->cons = p->mx - RING_ALIGN * (1 + fuzz_below(s, 4096));
		break;
	case 6:		/* past what was published */
		hc->cons = pub + RING_ALIGN * (1 + fuzz_below(s, 4096));
		break;
	case 7:		/* anything */
		hc->cons = fuzz_rand(s);
		break;
	case 8:		/* flags, kicks */
		fz_hostile_wakeups(s, hc, p->fr.fds.space_wr, p->fr.fds.data_rd);
		break;
	case 9:		/* scribble anywhere: the producer reads no data */
		n = 1 + fuzz_below(s, sizeof(buf));
		fz_fill(s, buf, n);
		memcpy(p->fr.hd + fuzz_below(s, p->fr.size - n + 1), buf, n);
		break;
	default:	/* stay */
		break;
	}
}

/**
 * fz_prod_call() - one random producer call
 * @p:		episode
 */
static void fz_prod_call(struct fz_prod *p)
{
	struct ring *r = p->fr.r;
	uint64_t pub = p->fr.hc->prod;
	uint32_t need;
	int rc, tmo;

	switch (fuzz_below(&p->s, 10)) {
	case 0: case 1: case 2: case 3:
		fz_prod_reserve(p);
		break;
	case 4: case 5:
		fz_prod_flush(p);
		break;
	case 6:
		fz_prod_read_fd(p);
		fz_prod_flush(p);
		break;
	case 7:
		need = fz_pct(&p->s, 50) ? 0 : RING_VNET_HDR_LEN + fz_frame_len(&p->s);
		fz_prod_before(p);
		if (p->own_known && p->fr.hc->cons == p->mx && !p->open) {
			rc = FZ_CALL(0, ring_ready(r, need));
			if (rc != fz_prod_room(p, need ? need : RING_LEN_MAX))
				fz_fail("ring_ready(%u) = %d, own %#" PRIx64
					" cons %#" PRIx64, need, rc, p->own, p->mx);
		} else {
			rc = FZ_CALL(0, ring_arm(r, need));
			if (rc != 0 && rc != 1)
				fz_fail("ring_arm: %d", rc);
			if (p->fr.hc->prod_waiting != (rc == 0))
				fz_fail("ring_arm %d left prod_waiting %u", rc,
					p->fr.hc->prod_waiting);
			FZ_CALL(0, (ring_disarm(r), 0));
		}
		fz_prod_after(p, pub);
		break;
	case 8:
		tmo = fz_pct(&p->s, 90) ? 0 : 1;
		fz_prod_before(p);
		rc = FZ_CALL(tmo, ring_wait(r, 0, tmo));
		if (rc && rc != -ETIMEDOUT)
			fz_fail("ring_wait: %d", rc);
		fz_prod_after(p, pub);
		break;
	default:
		fz_prod_before(p);
		rc = FZ_CALL(0, ring_commit(r, RING_VNET_HDR_LEN + RING_ETH_HLEN));
		if (!p->open && rc != -EINVAL)
			fz_fail("ring_commit without a reservation: %d", rc);
		if (!rc) {
			p->own += RING_REC_SIZE(RING_VNET_HDR_LEN + RING_ETH_HLEN);
			p->open = 0;
			tot.produced++;
		}
		fz_prod_after(p, pub);
	}
}

/**
 * fz_run_prod() - one producer episode against a hostile consumer
 * @seed:	episode seed
 * @steps:	steps
 */
static void fz_run_prod(uint64_t seed, unsigned int steps)
{
	struct fz_prod p = { .s = seed };
	uint64_t size = RING_SIZE_MIN << fuzz_below(&p.s, 2);
	uint64_t start = fz_start_pos(&p.s);
	struct ring_stats st;

	fz_ring_open(&p.fr, size, RING_PRODUCER, start);
	p.shadow = malloc(size);
	if (!p.shadow)
		fz_fail("malloc");
	p.own = p.mx = start;
	p.own_known = 1;
	for (fz.step = 0; fz.step < steps; fz.step++) {
		alarm(FZ_WATCHDOG_S);
		if (fz_pct(&p.s, 50))
			fz_prod_hostile(&p);
		fz_prod_call(&p);
		tot.steps++;
	}
	ring_get_stats(p.fr.r, &st);
	if (st.full != p.full)
		fz_fail("full counter %" PRIu64 ", harness saw %" PRIu64
			" ENOBUFS", st.full, p.full);
	fz_fold_stats(p.fr.r);
	free(p.shadow);
	fz_ring_close(&p.fr);
}

/* Mode race: a second process scribbles meanwhile ---------------------------- */

/**
 * fz_scribbler() - the child: rewrite the shared memory at random, forever
 * @fr:		ring (its hostile view)
 * @seed:	PRNG seed
 * @as_prod:	play the producer (write prod, records) or the consumer
 *
 * Dies with its parent (PR_SET_PDEATHSIG) or when the parent kills it.
 */
static void __attribute__((noreturn))
fz_scribbler(struct fz_ring *fr, uint64_t seed, int as_prod)
{
	struct fz_cons c = { .fr = *fr, .s = seed };
	uint64_t *s = &c.s, v;
	uint8_t buf[512];

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(0);
	c.hp = c.bound = fr->hc->cons;
	for (;;) {
		switch (fuzz_below(s, 8)) {
		case 0:
			v = fr->hc->cons + RING_ALIGN * fuzz_below(s, fr->size / RING_ALIGN + 2);
			if (as_prod)
				fr->hc->prod = v;
			else
				fr->hc->cons = fr->hc->prod - RING_ALIGN * fuzz_below(s, 64);
			break;
		case 1:
			v = fuzz_rand(s);
			if (as_prod)
				fr->hc->prod = v;
			else
				fr->hc->cons = v;
			break;
		case 2: case 3:
			c.hp = fr->hc->cons & ~(uint64_t)(RING_ALIGN - 1);
			c.bound = c.hp;
			fz_cons_good(&c, 1 + (unsigned int)fuzz_below(s, 32));
			if (as_prod)
				fr->hc->prod = c.hp;
			break;
		case 4:
			c.hp = fr->hc->prod & ~(uint64_t)(RING_ALIGN - 1);
			c.bound = c.hp;
			c.hp += fz_cons_bad(&c);
			if (as_prod)
				fr->hc->prod = c.hp;
			break;
		case 5:
			fr->hc->prod_waiting = (uint32_t)fuzz_rand(s);
			fr->hc->cons_waiting = (uint32_t)fuzz_rand(s);
			break;
		default:
			v = 1 + fuzz_below(s, sizeof(buf));
			fz_fill(s, buf, v);
			memcpy(fr->hd + fuzz_below(s, fr->size - v + 1), buf, v);
		}
	}
}

/**
 * fz_run_race() - consume, then produce, while a child scribbles
 * @seed:	episode seed
 * @steps:	steps for each half
 */
static void fz_run_race(uint64_t seed, unsigned int steps)
{
	struct fz_cons c = { .s = seed };
	struct fz_ring fr;
	uint8_t *pl;
	pid_t pid;
	int st;

	/* half one: the parent consumes */
	fz_ring_open(&c.fr, RING_SIZE_MIN, RING_CONSUMER, fz_start_pos(&c.s));
	if (pipe2(c.pipe, O_NONBLOCK | O_CLOEXEC) < 0)
		fz_fail("pipe: %s", strerror(errno));
	c.floor = c.fr.hc->cons;
	pid = fork();
	if (pid < 0)
		fz_fail("fork: %s", strerror(errno));
	if (pid == 0)
		fz_scribbler(&c.fr, seed ^ 0x5eed, 1);
	for (fz.step = 0; fz.step < steps; fz.step++) {
		alarm(FZ_WATCHDOG_S);
		fz_cons_call(&c, 1);
		tot.steps++;
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
		fz_fail("scribbler ended with status %#x", st);
	tot.accepted += c.accepted;
	fz_fold_stats(c.fr.r);
	close(c.pipe[0]);
	close(c.pipe[1]);
	fz_ring_close(&c.fr);

	/* half two: the parent produces */
	fz_ring_open(&fr, RING_SIZE_MIN, RING_PRODUCER, fz_start_pos(&c.s));
	pid = fork();
	if (pid < 0)
		fz_fail("fork: %s", strerror(errno));
	if (pid == 0)
		fz_scribbler(&fr, seed ^ 0xcafe, 0);
	for (fz.step = 0; fz.step < steps; fz.step++) {
		uint32_t len = RING_VNET_HDR_LEN + fz_frame_len(&c.s);
		uint64_t off;
		int rc;

		alarm(FZ_WATCHDOG_S);
		rc = FZ_CALL(0, ring_reserve(fr.r, len, &pl));
		if (rc == 0) {
			off = (uint64_t)(pl - FZ_REC_HDR - (fr.base + FZ_CTRL));
			if (pl < fr.base + FZ_CTRL + FZ_REC_HDR ||
			    off % RING_ALIGN || off + RING_REC_SIZE(len) > fr.size)
				fz_fail("reservation outside the data area");
			memset(pl, 0, len < 64 ? len : 64);
			rc = FZ_CALL(0, ring_commit(fr.r, len));
			if (rc)
				fz_fail("ring_commit: %d", rc);
			tot.produced++;
		} else if (rc != -ENOBUFS) {
			fz_fail("ring_reserve: %d", rc);
		}
		if (fz_pct(&c.s, 30))
			FZ_CALL(0, ring_flush(fr.r));
		if (fz_pct(&c.s, 10)) {
			if (FZ_CALL(0, ring_arm(fr.r, 0)) == 0)
				FZ_CALL(0, (ring_disarm(fr.r), 0));
		}
		if (fz_pct(&c.s, 5))
			FZ_CALL(0, ring_wait(fr.r, 0, 0));
		fz_check_counters(fr.r, RING_PRODUCER);
		tot.steps++;
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
		fz_fail("scribbler ended with status %#x", st);
	fz_fold_stats(fr.r);
	fz_ring_close(&fr);
}

/* Mode fds: the agent plays with its descriptors ----------------------------- */

/**
 * fz_reopen() - a new description of a pipe end, through /proc/self/fd
 * @fd:		the agent's end
 * @flags:	open flags (O_RDWR works on a pipe and never blocks)
 *
 * Return: the new descriptor
 */
static int fz_reopen(int fd, int flags)
{
	char path[64];
	int nfd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	nfd = open(path, flags | O_CLOEXEC);
	if (nfd < 0)
		fz_fail("reopen %s: %s", path, strerror(errno));
	return nfd;
}

/**
 * fz_fill_pipe() - write into a pipe until it is full
 * @fd:		an O_NONBLOCK description of the write side
 */
static void fz_fill_pipe(int fd)
{
	static char buf[65536];

	while (write(fd, buf, sizeof(buf)) > 0)
		;
	while (write(fd, buf, 1) > 0)
		;
}

/**
 * fz_nonblock_kept() - the daemon's own ends must still be O_NONBLOCK
 * @fd:		a daemon descriptor
 */
static void fz_nonblock_kept(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || !(fl & O_NONBLOCK))
		fz_fail("daemon descriptor %d lost O_NONBLOCK (flags %#x)", fd, fl);
}

/**
 * fz_run_fds() - the daemon's calls against an agent that abuses its ends
 * @seed:	episode seed
 * @steps:	steps
 *
 * Ring a: A2H, the daemon consumes; the agent's ends are data_wr and
 * space_rd. Ring b: H2A, the daemon produces; the agent's ends are data_rd
 * and space_wr. The harness does its own I/O only through O_NONBLOCK
 * descriptions it opened, never through the ones it made blocking.
 */
static void fz_run_fds(uint64_t seed, unsigned int steps)
{
	uint64_t s = seed;
	struct fz_ring a, b;
	int agent[4], io[4], extra[16], nextra = 0, rc, tmo;
	struct ring_rec rec;
	unsigned int n;
	uint8_t *pl;
	char buf[4096];

	fz_ring_open(&a, RING_SIZE_MIN, RING_CONSUMER, 0);
	fz_ring_open(&b, RING_SIZE_MIN, RING_PRODUCER, 0);
	agent[0] = a.fds.data_wr;	/* agent kicks the daemon with it */
	agent[1] = a.fds.space_rd;	/* agent sleeps on it */
	agent[2] = b.fds.data_rd;
	agent[3] = b.fds.space_wr;
	for (int i = 0; i < 4; i++)
		io[i] = fz_reopen(agent[i], O_RDWR | O_NONBLOCK);
	for (fz.step = 0; fz.step < steps; fz.step++) {
		int i = (int)fuzz_below(&s, 4);

		alarm(FZ_WATCHDOG_S);
		switch (fuzz_below(&s, 8)) {
		case 0:		/* clear O_NONBLOCK on the agent's own end */
			fcntl(agent[i], F_SETFL, 0);
			break;
		case 1:		/* another description, blocking */
			if (nextra < 16)
				extra[nextra++] = fz_reopen(agent[i], O_RDWR);
			break;
		case 2: case 3:	/* fill a pipe */
			fz_fill_pipe(io[i]);
			break;
		case 4:		/* shrink a pipe (fails while it holds more) */
			fcntl(io[i], F_SETPIPE_SZ, fz_pct(&s, 50) ? 4096 : 1 << 20);
			break;
		case 5:		/* drain a pipe */
			while (read(io[i], buf, sizeof(buf)) > 0)
				;
			break;
		case 6:		/* ask for kicks */
			a.hc->prod_waiting = 1;
			b.hc->cons_waiting = 1;
			break;
		default:	/* traffic: a record into a, release b */
			if (a.hc->prod - a.hc->cons + 128 <= a.size) {
				struct ring_rec_hdr h = {
					.len = 60 + RING_VNET_HDR_LEN,
					.vnet_len = RING_VNET_HDR_LEN };
				struct ring_vnet_hdr v = { 0 };

				fz_put_rec(&a, a.hc->prod, &h, &v, &s, 60);
				a.hc->prod += 128;
			}
			b.hc->cons = b.hc->prod;
		}
		/* the daemon's side: every call returns in time */
		tmo = (int)fuzz_below(&s, 3) * 5;
		rc = FZ_CALL(tmo, ring_wait(a.r, 0, tmo));
		if (rc && rc != -ETIMEDOUT)
			fz_fail("ring_wait(a): %d", rc);
		FZ_CALL(0, (ring_disarm(a.r), 0));
		while (FZ_CALL(0, ring_peek(a.r, &rec)) == 0)
			tot.accepted++;
		rc = FZ_CALL(0, ring_release(a.r));
		if (rc)
			fz_fail("ring_release: %d", rc);
		rc = FZ_CALL(0, ring_write_fd(a.r, a.devnull, 8, &n));
		if (rc && rc != -EAGAIN)
			fz_fail("ring_write_fd: %d", rc);
		tot.accepted += n;
		if (FZ_CALL(0, ring_arm(a.r, 0)) == 0)
			FZ_CALL(0, (ring_disarm(a.r), 0));

		rc = FZ_CALL(0, ring_reserve(b.r, 60 + RING_VNET_HDR_LEN, &pl));
		if (rc == 0) {
			memset(pl, 0, 60 + RING_VNET_HDR_LEN);
			FZ_CALL(0, ring_commit(b.r, 60 + RING_VNET_HDR_LEN));
			tot.produced++;
		}
		rc = FZ_CALL(0, ring_flush(b.r));
		if (rc)
			fz_fail("ring_flush: %d", rc);
		rc = FZ_CALL(tmo, ring_wait(b.r, 0, tmo));
		if (rc && rc != -ETIMEDOUT)
			fz_fail("ring_wait(b): %d", rc);
		FZ_CALL(0, (ring_disarm(b.r), 0));
		FZ_CALL(0, ring_ready(b.r, 0));

		fz_nonblock_kept(a.fds.data_rd);
		fz_nonblock_kept(a.fds.space_wr);
		fz_nonblock_kept(b.fds.space_rd);
		fz_nonblock_kept(b.fds.data_wr);
		fz_check_counters(a.r, RING_CONSUMER);
		fz_check_counters(b.r, RING_PRODUCER);
		tot.steps++;
	}
	for (int i = 0; i < nextra; i++)
		close(extra[i]);
	for (int i = 0; i < 4; i++)
		close(io[i]);
	fz_fold_stats(a.r);
	fz_fold_stats(b.r);
	fz_ring_close(&a);
	fz_ring_close(&b);
}

/* Driver --------------------------------------------------------------------- */

/**
 * fz_init() - the watchdog; a peer that closed its end is not a signal
 *
 * Return: 0
 */
static int fz_init(void)
{
	signal(SIGALRM, fz_watchdog);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

/**
 * fz_episode() - one episode of the mode -m chose
 * @seed:	episode seed
 * @steps:	steps
 */
static void fz_episode(uint64_t seed, unsigned int steps)
{
	switch (fuzz_run.mode) {
	case FZ_CONS:
		fz_run_cons(seed, steps);
		break;
	case FZ_PROD:
		fz_run_prod(seed, steps);
		break;
	case FZ_RACE:
		fz_run_race(seed, steps);
		break;
	default:
		fz_run_fds(seed, steps);
	}
}

/**
 * fz_finish() - the run's figures, one JSON object on stdout
 * @secs:	wall time
 */
static void fz_finish(double secs)
{
	alarm(0);
	printf("{\"fuzzer\": \"ring\", \"mode\": \"%s\", \"seed\": %" PRIu64
	       ", \"episodes\": %" PRIu64 ", \"steps_per_episode\": %u"
	       ", \"iterations\": %" PRIu64 ", \"calls\": %" PRIu64
	       ", \"accepted\": %" PRIu64 ", \"produced\": %" PRIu64
	       ", \"pads\": %" PRIu64 ", \"skipped_bytes\": %" PRIu64
	       ", \"full\": %" PRIu64 ", \"kicks\": %" PRIu64
	       ", \"write_fd_eagain\": %" PRIu64 ", \"fd_msgs_checked\": %" PRIu64
	       ", \"max_call_ms\": %.3f, \"seconds\": %.1f, \"violations\": {",
	       fz_mode_names[fuzz_run.mode], fuzz_run.first, fuzz_run.episodes,
	       fuzz_run.iters, tot.steps, tot.calls, tot.accepted, tot.produced,
	       tot.pads, tot.skipped, tot.full, tot.kicks, tot.eagain,
	       tot.fd_msgs, tot.max_call_ns / 1e6, secs);
	for (unsigned int i = 0; i < RING_DROP__MAX; i++)
		printf("%s\"%s\": %" PRIu64, i ? ", " : "", ring_drop_name(i),
		       tot.drops[i]);
	printf("}}\n");
}

const struct fuzz_target fuzz_target = {
	.name = "ring",
	.modes = fz_mode_names,
	.iters_default = FZ_STEPS_DEFAULT,
	.iters_name = "STEPS",
	.init = fz_init,
	.episode = fz_episode,
	.finish = fz_finish,
};
