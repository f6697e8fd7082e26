// SPDX-License-Identifier: MIT
/* ring.c - single-producer single-consumer frame ring over a sealed memfd
 *
 * The rules and the layout are in ring.h (theory of operation) and
 * ring_abi.h (the shared structs). This file keeps to them:
 *  - a handle's own position lives in struct ring (private) and is only
 *    ever stored to shared memory, never loaded back (except once, at
 *    attach, to adopt a ring that already carries traffic);
 *  - the peer's position is loaded with acquire semantics and validated
 *    before use; our own is stored with release semantics once per burst;
 *  - every byte read from the data area is first copied to private memory
 *    (ring_copy_in()) and only the copy is looked at.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "ring.h"
#include "util.h"

#define RING_SEALS	(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

/**
 * struct ring - private handle of one side of a ring
 * @ctrl:	shared control block (page 0 of the mapping)
 * @data:	shared data area
 * @size:	data area size, our own copy: never re-read from @ctrl
 * @mask:	@size - 1
 * @map_len:	length of the mapping
 * @role:	RING_PRODUCER or RING_CONSUMER
 * @wait_fd:	read end of the pipe this side sleeps on (ours alone)
 * @kick_fd:	write end of the pipe that wakes the peer (ours alone)
 * @own:	our position: producer's write position or consumer's read
 *		position, ahead of what we published while a burst is open
 * @published:	own position as last stored to shared memory
 * @peer:	last validated position of the peer
 * @peer_bad:	last invalid peer position, so each is counted once
 * @reserved:	payload bytes the open reservation allows, 0 if none
 * @violations:	sum of @stats.drops, for a cheap check per burst
 * @stats:	counters
 */
struct ring {
	struct ring_ctrl *ctrl;
	uint8_t *data;
	uint64_t size;
	uint64_t mask;
	size_t map_len;
	int role;
	int wait_fd;
	int kick_fd;
	uint64_t own;
	uint64_t published;
	uint64_t peer;
	uint64_t peer_bad;
	uint32_t reserved;
	uint64_t violations;
	struct ring_stats stats;
};

/**
 * ring_count_drop() - count one violation under its reason
 * @r:		handle
 * @reason:	enum ring_drop
 */
static inline void ring_count_drop(struct ring *r, int reason)
{
	r->stats.drops[reason]++;
	r->violations++;
}

static const char *const ring_drop_names[RING_DROP__MAX] = {
	[RING_DROP_POS_MISALIGNED]	= "pos_misaligned",
	[RING_DROP_POS_BACKWARDS]	= "pos_backwards",
	[RING_DROP_POS_BEYOND]		= "pos_beyond_size",
	[RING_DROP_FLAGS]		= "bad_flags",
	[RING_DROP_LEN_MAX]		= "len_over_max",
	[RING_DROP_LEN_SHORT]		= "len_too_short",
	[RING_DROP_VNET_LEN]		= "bad_vnet_len",
	[RING_DROP_PAST_PUBLISHED]	= "len_past_published",
	[RING_DROP_PAST_END]		= "len_past_end",
	[RING_DROP_VNET_FLAGS]		= "vnet_flags",
	[RING_DROP_VNET_GSO_TYPE]	= "vnet_gso_type",
	[RING_DROP_VNET_GSO_SIZE]	= "vnet_gso_size",
	[RING_DROP_VNET_HDR_LEN]	= "vnet_hdr_len",
	[RING_DROP_VNET_CSUM]		= "vnet_csum",
};

/**
 * ring_drop_name() - name of a drop reason, as stats and tests spell it
 * @reason:	enum ring_drop value
 *
 * Return: a static string, or NULL past RING_DROP__MAX
 */
const char *ring_drop_name(unsigned int reason)
{
	if (reason >= RING_DROP__MAX)
		return NULL;
	return ring_drop_names[reason];
}

/**
 * ring_copy_in() - copy bytes the peer can change into private memory
 * @dst:	private destination
 * @src:	shared source
 * @len:	bytes
 *
 * The compiler barrier stops it from replacing later reads of @dst with
 * re-reads of @src (a double fetch the peer could race).
 */
static inline void ring_copy_in(void *dst, const void *src, size_t len)
{
	memcpy(dst, src, len);
	__asm__ __volatile__("" ::: "memory");
}

static inline int ring_is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/**
 * ring_kick() - wake the peer: one byte into its wakeup pipe
 * @r:		ring
 *
 * @r->kick_fd is our own O_NONBLOCK description (ring.h, "Descriptors"),
 * so this never blocks, whatever the peer does to its end.
 *
 * Return: 0 or -errno (EAGAIN, a full pipe, is not an error: the peer has
 * a wakeup pending anyway)
 */
static int ring_kick(struct ring *r)
{
	static const char one = 1;

	r->stats.kicks++;
	if (write(r->kick_fd, &one, 1) < 0 && errno != EAGAIN && errno != EINTR)
		return -errno;
	return 0;
}

/**
 * ring_drain() - consume pending wakeups, without blocking, bounded
 * @fd:		our O_NONBLOCK read end
 *
 * One read() of at most RING_DRAIN_MAX bytes: a peer that writes more
 * leaves the pipe readable, which costs one more look at the ring, never
 * a loop here.
 */
static void ring_drain(int fd)
{
	char buf[RING_DRAIN_MAX];

	while (read(fd, buf, sizeof(buf)) < 0 && errno == EINTR)
		;
}

/**
 * ring_nonblock() - make sure a descriptor of ours is O_NONBLOCK
 * @fd:		descriptor
 *
 * Return: 0 or -errno
 */
static int ring_nonblock(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0)
		return -errno;
	if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/**
 * ring_create() - make the memfd and wakeup pipes of a new, empty ring
 * @data_size:	data area size: a power of two in [RING_SIZE_MIN, RING_SIZE_MAX],
 *		or 0 for RING_SIZE_DEFAULT
 * @fds:	the ring's descriptors, out: the sealed memfd and both ends of
 *		the data and space pipes, all O_NONBLOCK | O_CLOEXEC
 *
 * The control block is initialised (magic, version, size, positions 0)
 * before the memfd is sealed. The caller owns the five descriptors and
 * hands each side its ends (ring_fds_end()). Nothing is left open on
 * failure.
 *
 * Return: 0 or -errno (-EINVAL for a bad size)
 */
int ring_create(uint64_t data_size, struct ring_fds *fds)
{
	int data[2] = { -1, -1 }, space[2] = { -1, -1 };
	struct ring_ctrl *ctrl;
	int fd, rc;
	size_t len;

	if (!data_size)
		data_size = RING_SIZE_DEFAULT;
	if (unlikely(!fds || !ring_is_pow2(data_size) ||
		     data_size < RING_SIZE_MIN || data_size > RING_SIZE_MAX))
		return -EINVAL;
	len = RING_CTRL_SIZE + data_size;

	fd = memfd_create("vnetshare-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)len) < 0)
		goto fail;
	ctrl = mmap(NULL, RING_CTRL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		    fd, 0);
	if (ctrl == MAP_FAILED)
		goto fail;
	memset(ctrl, 0, sizeof(*ctrl));
	ctrl->version = RING_VERSION;
	ctrl->hdr_size = RING_CTRL_SIZE;
	ctrl->data_size = data_size;
	__atomic_store_n(&ctrl->magic, RING_MAGIC, __ATOMIC_RELEASE);
	munmap(ctrl, RING_CTRL_SIZE);

	if (fcntl(fd, F_ADD_SEALS, RING_SEALS) < 0)
		goto fail;
	if (pipe2(data, O_NONBLOCK | O_CLOEXEC) < 0 ||
	    pipe2(space, O_NONBLOCK | O_CLOEXEC) < 0)
		goto fail;

	fds->memfd = fd;
	fds->data_rd = data[0];
	fds->data_wr = data[1];
	fds->space_rd = space[0];
	fds->space_wr = space[1];
	return 0;
fail:
	rc = -errno;
	for (int i = 0; i < 2; i++) {
		if (data[i] >= 0)
			close(data[i]);
		if (space[i] >= 0)
			close(space[i]);
	}
	close(fd);
	return rc;
}

/**
 * ring_fds_end() - the descriptors one side of a ring gets
 * @fds:	all of the ring's descriptors
 * @role:	RING_PRODUCER or RING_CONSUMER
 * @end:	that side's memfd, wait and kick descriptors, out
 *
 * The daemon hands an agent exactly this, and keeps the other side's.
 */
void ring_fds_end(const struct ring_fds *fds, int role, struct ring_end *end)
{
	end->memfd = fds->memfd;
	if (role == RING_PRODUCER) {
		end->wait_fd = fds->space_rd;
		end->kick_fd = fds->data_wr;
	} else {
		end->wait_fd = fds->data_rd;
		end->kick_fd = fds->space_wr;
	}
}

/**
 * ring_attach() - map a ring and make a handle for one side of it
 * @out:	new handle, out
 * @end:	this side's descriptors: the memfd (must carry RING_SEALS), the
 *		read end of the pipe it sleeps on, the write end of the pipe
 *		that wakes the peer
 * @role:	RING_PRODUCER or RING_CONSUMER
 * @data_size:	data area size the caller knows, or 0 to take it from the
 *		memfd (a side that trusts the ring's creator)
 *
 * The memfd's seals, size, magic and version are checked before the handle
 * is made; the wait and kick descriptors are made O_NONBLOCK if they are
 * not. Our own position is read once here, to adopt a ring in use (a
 * restarted daemon); it must be aligned and within one ring size of the
 * peer's. The handle does not own the descriptors: the caller closes them.
 *
 * Return: 0 or -errno: -EPERM if not sealed, -EINVAL for a bad size or role,
 * -EPROTO for a bad control block
 */
int ring_attach(struct ring **out, const struct ring_end *end, int role,
		uint64_t data_size)
{
	struct ring_ctrl *ctrl;
	struct ring *r;
	uint64_t size, own, peer;
	struct stat st;
	int seals, rc;
	void *map;

	if (unlikely(!out || !end ||
		     (role != RING_PRODUCER && role != RING_CONSUMER)))
		return -EINVAL;
	seals = fcntl(end->memfd, F_GET_SEALS);
	if (seals < 0)
		return -errno;
	if ((seals & RING_SEALS) != RING_SEALS)
		return -EPERM;
	if (fstat(end->memfd, &st) < 0)
		return -errno;
	if (st.st_size <= RING_CTRL_SIZE)
		return -EINVAL;
	size = (uint64_t)st.st_size - RING_CTRL_SIZE;
	if (!ring_is_pow2(size) || size < RING_SIZE_MIN || size > RING_SIZE_MAX)
		return -EINVAL;
	if (data_size && data_size != size)
		return -EINVAL;
	rc = ring_nonblock(end->wait_fd);
	if (!rc)
		rc = ring_nonblock(end->kick_fd);
	if (rc)
		return rc;

	/* not MAP_POPULATE: a page of the memfd exists once a producer wrote
	 * it, so a ring costs what its traffic touched, not its size
	 * (docs/design-notes.md, "Rings cost what they carried") */
	map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE,
		   MAP_SHARED, end->memfd, 0);
	if (map == MAP_FAILED)
		return -errno;
	ctrl = map;
	if (__atomic_load_n(&ctrl->magic, __ATOMIC_ACQUIRE) != RING_MAGIC ||
	    ctrl->version != RING_VERSION || ctrl->hdr_size != RING_CTRL_SIZE ||
	    ctrl->data_size != size)
		goto proto;

	if (role == RING_PRODUCER) {
		own = __atomic_load_n(&ctrl->prod, __ATOMIC_RELAXED);
		peer = __atomic_load_n(&ctrl->cons, __ATOMIC_ACQUIRE);
	} else {
		own = __atomic_load_n(&ctrl->cons, __ATOMIC_RELAXED);
		peer = __atomic_load_n(&ctrl->prod, __ATOMIC_ACQUIRE);
	}
	if (own % RING_ALIGN)
		goto proto;
	if (role == RING_PRODUCER &&
	    (peer % RING_ALIGN || own - peer > size))
		goto proto;

	r = calloc(1, sizeof(*r));
	if (!r) {
		munmap(map, (size_t)st.st_size);
		return -ENOMEM;
	}
	r->ctrl = ctrl;
	r->data = (uint8_t *)map + RING_CTRL_SIZE;
	r->size = size;
	r->mask = size - 1;
	r->map_len = (size_t)st.st_size;
	r->role = role;
	r->wait_fd = end->wait_fd;
	r->kick_fd = end->kick_fd;
	r->own = own;
	r->published = own;
	/* A consumer validates prod on first use, against this position. */
	r->peer = role == RING_PRODUCER ? peer : own;
	r->peer_bad = ~0ull;	/* never a valid (aligned) position */
	*out = r;
	return 0;
proto:
	munmap(map, (size_t)st.st_size);
	return -EPROTO;
}

/**
 * ring_detach() - unmap a ring and free its handle (descriptors stay open)
 * @r:		handle, may be NULL
 */
void ring_detach(struct ring *r)
{
	if (!r)
		return;
	munmap(r->ctrl, r->map_len);
	free(r);
}

/**
 * ring_data_size() - size of the data area, as this side knows it
 * @r:		handle
 *
 * Return: bytes
 */
uint64_t ring_data_size(const struct ring *r)
{
	return r->size;
}

/**
 * ring_role() - which side of the ring a handle is
 * @r:		handle
 *
 * Return: RING_PRODUCER or RING_CONSUMER
 */
int ring_role(const struct ring *r)
{
	return r->role;
}

/* Producer side ------------------------------------------------------------ */

/**
 * ring_peer_cons() - load and validate the consumer's position
 * @r:		producer handle
 *
 * The consumer may only move forward, and never past what we published.
 * A bad value is counted once and ignored: the producer then sees no new
 * space, which only hurts the partition that lied.
 */
static void ring_peer_cons(struct ring *r)
{
	uint64_t c = __atomic_load_n(&r->ctrl->cons, __ATOMIC_ACQUIRE);
	int reason;

	if (likely(c == r->peer))
		return;
	if (unlikely(c % RING_ALIGN))
		reason = RING_DROP_POS_MISALIGNED;
	else if (unlikely((int64_t)(c - r->peer) < 0))
		reason = RING_DROP_POS_BACKWARDS;
	else if (unlikely(c - r->peer > r->published - r->peer))
		reason = RING_DROP_POS_BEYOND;
	else {
		r->peer = c;
		return;
	}
	if (c != r->peer_bad) {
		r->peer_bad = c;
		ring_count_drop(r, reason);
	}
}

/**
 * ring_room() - would a record of @len payload bytes fit now?
 * @r:		producer handle
 * @len:	payload bytes (vnet header + frame)
 *
 * Counts the PAD that a record crossing the end of the data area needs.
 *
 * Return: bytes of ring the reservation takes (PAD included), 0 if no room
 */
static uint64_t ring_room(const struct ring *r, uint32_t len)
{
	uint64_t need = RING_REC_SIZE(len);
	uint64_t off = r->own & r->mask;
	uint64_t used = r->own - r->peer;

	if (off + need > r->size)
		need += r->size - off;
	return used + need <= r->size ? need : 0;
}

/**
 * ring_reserve() - reserve room for one record
 * @r:		producer handle
 * @len:	payload bytes to reserve: vnet header + frame, at most
 *		RING_LEN_MAX; the record committed may be shorter
 * @payload:	where to write the vnet header and the frame, out
 *
 * Writes a PAD record first if the record would cross the end of the data
 * area. The reservation stays open until ring_commit() or the next
 * ring_reserve().
 *
 * Return: 0, -ENOBUFS if the ring is full, -EINVAL for a bad length
 */
int ring_reserve(struct ring *r, uint32_t len, uint8_t **payload)
{
	struct ring_rec_hdr *pad;
	uint64_t off;

	if (unlikely(r->role != RING_PRODUCER || len > RING_LEN_MAX))
		return -EINVAL;
	if (!ring_room(r, len)) {
		ring_peer_cons(r);
		if (!ring_room(r, len)) {
			r->stats.full++;
			r->reserved = 0;
			return -ENOBUFS;
		}
	}
	off = r->own & r->mask;
	if (off + RING_REC_SIZE(len) > r->size) {
		/*  off            size
		 *   |PAD..........|   -> own moves to the next multiple of size
		 */
		pad = (struct ring_rec_hdr *)(r->data + off);
		pad->len = (uint32_t)(r->size - off - sizeof(*pad));
		pad->flags = RING_REC_PAD;
		pad->vnet_len = 0;
		pad->reserved = 0;
		r->own += r->size - off;
		r->stats.pads++;
		off = 0;
	}
	r->reserved = len;
	*payload = r->data + off + sizeof(struct ring_rec_hdr);
	return 0;
}

/**
 * ring_commit() - finish the open reservation as a record of @len bytes
 * @r:		producer handle
 * @len:	payload bytes written: RING_VNET_HDR_LEN + frame length
 *
 * The record is not visible to the consumer before ring_flush().
 *
 * Return: 0, -EINVAL if no reservation is open or @len is out of range
 */
int ring_commit(struct ring *r, uint32_t len)
{
	struct ring_rec_hdr *h;

	if (unlikely(!r->reserved || len > r->reserved ||
		     len < RING_VNET_HDR_LEN + RING_FRAME_MIN))
		return -EINVAL;
	h = (struct ring_rec_hdr *)(r->data + (r->own & r->mask));
	h->len = len;
	h->flags = 0;
	h->vnet_len = RING_VNET_HDR_LEN;
	h->reserved = 0;
	r->own += RING_REC_SIZE(len);
	r->reserved = 0;
	r->stats.records++;
	r->stats.bytes += len - RING_VNET_HDR_LEN;
	return 0;
}

/**
 * ring_flush() - publish committed records, wake the consumer if it sleeps
 * @r:		producer handle
 *
 * One release-store for the whole burst; the data pipe is written only if
 * the consumer has said it sleeps.
 *
 * Return: 0, -EINVAL if @r is not a producer (it would publish its own
 * position as prod), or -errno from the wakeup pipe write
 */
int ring_flush(struct ring *r)
{
	if (unlikely(r->role != RING_PRODUCER))
		return -EINVAL;
	if (r->own == r->published)
		return 0;
	__atomic_store_n(&r->ctrl->prod, r->own, __ATOMIC_RELEASE);
	r->published = r->own;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&r->ctrl->cons_waiting, __ATOMIC_RELAXED))
		return ring_kick(r);
	return 0;
}

/**
 * ring_read_fd() - read frames from @fd straight into ring records
 * @r:		producer handle
 * @fd:		non-blocking descriptor that returns one frame per read(),
 *		led by a 12-byte vnet header (a TAP with IFF_VNET_HDR)
 * @max:	most read() calls, so the work per call is bounded even when
 *		every frame is dropped as too short
 * @count:	frames read and committed, out
 *
 * Each read() lands in a reserved record of the largest size and is
 * committed with its real length: no staging copy. Does not flush.
 *
 * Return: 0 when @fd ran dry, -ENOBUFS when the ring filled, -EAGAIN when
 * @max was reached (more may be waiting), -errno on a read error
 */
int ring_read_fd(struct ring *r, int fd, unsigned int max, unsigned int *count)
{
	unsigned int n = 0;
	uint8_t *p;
	ssize_t len;
	int rc = -EAGAIN;

	for (unsigned int tries = 0; tries < max; tries++) {
		rc = ring_reserve(r, RING_LEN_MAX, &p);
		if (rc < 0)
			break;
		len = read(fd, p, RING_LEN_MAX);
		if (len < 0) {
			if (errno == EINTR)
				continue;
			rc = errno == EAGAIN ? 0 : -errno;
			break;
		}
		if (len == 0) {
			rc = 0;
			break;
		}
		if (ring_commit(r, (uint32_t)len) < 0) {
			r->stats.short_reads++;
			continue;
		}
		n++;
		rc = -EAGAIN;
	}
	r->reserved = 0;
	*count = n;
	return rc;
}

/* Consumer side ------------------------------------------------------------ */

/**
 * ring_peer_prod() - load and validate the producer's position
 * @r:		consumer handle
 *
 * Valid: 64-byte aligned, not behind the last valid one, at most one ring
 * size ahead of what we released. A bad value is counted once and ignored.
 */
static void ring_peer_prod(struct ring *r)
{
	uint64_t p = __atomic_load_n(&r->ctrl->prod, __ATOMIC_ACQUIRE);
	int reason;

	if (likely(p == r->peer))
		return;
	if (unlikely(p % RING_ALIGN))
		reason = RING_DROP_POS_MISALIGNED;
	else if (unlikely((int64_t)(p - r->peer) < 0))
		reason = RING_DROP_POS_BACKWARDS;
	else if (unlikely(p - r->published > r->size))
		reason = RING_DROP_POS_BEYOND;
	else {
		r->peer = p;
		return;
	}
	if (p != r->peer_bad) {
		r->peer_bad = p;
		ring_count_drop(r, reason);
	}
}

/**
 * ring_vnet_check() - validate a private copy of a vnet header
 * @v:		the copy
 * @frame_len:	length of the frame it describes
 *
 * Return: -1 if valid, else the enum ring_drop reason
 */
static int ring_vnet_check(const struct ring_vnet_hdr *v, uint32_t frame_len)
{
	unsigned int gso = v->gso_type & ~RING_VNET_GSO_ECN;

	if (v->flags & ~(RING_VNET_F_NEEDS_CSUM | RING_VNET_F_DATA_VALID))
		return RING_DROP_VNET_FLAGS;
	if (gso != RING_VNET_GSO_NONE && gso != RING_VNET_GSO_TCPV4 &&
	    gso != RING_VNET_GSO_TCPV6 && gso != RING_VNET_GSO_UDP_L4)
		return RING_DROP_VNET_GSO_TYPE;
	if (gso == RING_VNET_GSO_NONE && (v->gso_type & RING_VNET_GSO_ECN))
		return RING_DROP_VNET_GSO_TYPE;
	if (gso != RING_VNET_GSO_NONE && !v->gso_size)
		return RING_DROP_VNET_GSO_SIZE;
	if (v->hdr_len > frame_len)
		return RING_DROP_VNET_HDR_LEN;
	if ((v->flags & RING_VNET_F_NEEDS_CSUM) &&
	    (uint32_t)v->csum_start + v->csum_offset + 2 > frame_len)
		return RING_DROP_VNET_CSUM;
	return -1;
}

/**
 * ring_skip() - drop everything published after an untrustworthy header
 * @r:		consumer handle
 * @reason:	enum ring_drop
 *
 * A header we cannot trust does not tell where the next record starts; the
 * producer's published position is the next place we know one does.
 */
static void ring_skip(struct ring *r, int reason)
{
	ring_count_drop(r, reason);
	r->stats.skipped_bytes += r->peer - r->own;
	r->own = r->peer;
}

/**
 * ring_peek() - next well-formed record, validated, as private copies
 * @r:		consumer handle
 * @rec:	the record, out; rec->frame stays valid until ring_release()
 *
 * PAD records are skipped; invalid records are counted and skipped.
 *
 * Return: 0 with a record, -EAGAIN if there is none now, -EINVAL if @r is
 * not a consumer
 */
int ring_peek(struct ring *r, struct ring_rec *rec)
{
	struct ring_rec_hdr h;
	uint64_t off, rsize, avail;
	uint32_t frame_len;
	int reason;

	if (unlikely(r->role != RING_CONSUMER))
		return -EINVAL;
	for (;;) {
		if (r->own == r->peer) {
			ring_peer_prod(r);
			if (r->own == r->peer)
				return -EAGAIN;
		}
		/* own < peer, both aligned: at least one 64-byte unit here */
		avail = r->peer - r->own;
		off = r->own & r->mask;
		ring_copy_in(&h, r->data + off, sizeof(h));

		if (unlikely(h.flags & ~RING_REC_FLAGS_KNOWN)) {
			ring_skip(r, RING_DROP_FLAGS);
			continue;
		}
		if (h.flags & RING_REC_PAD) {
			rsize = r->size - off;
			if (unlikely(rsize > avail)) {
				ring_skip(r, RING_DROP_PAST_PUBLISHED);
				continue;
			}
			r->own += rsize;
			r->stats.pads++;
			continue;
		}
		if (unlikely(h.len > RING_LEN_MAX)) {
			ring_skip(r, RING_DROP_LEN_MAX);
			continue;
		}
		if (unlikely(h.vnet_len != RING_VNET_HDR_LEN)) {
			ring_skip(r, RING_DROP_VNET_LEN);
			continue;
		}
		if (unlikely(h.len < RING_VNET_HDR_LEN + RING_FRAME_MIN)) {
			ring_skip(r, RING_DROP_LEN_SHORT);
			continue;
		}
		rsize = RING_REC_SIZE(h.len);
		if (unlikely(rsize > avail)) {
			ring_skip(r, RING_DROP_PAST_PUBLISHED);
			continue;
		}
		if (unlikely(off + rsize > r->size)) {
			ring_skip(r, RING_DROP_PAST_END);
			continue;
		}

		/* The header is sound: from here a bad record is skipped alone. */
		frame_len = h.len - RING_VNET_HDR_LEN;
		ring_copy_in(&rec->vnet, r->data + off + sizeof(h),
			     RING_VNET_HDR_LEN);
		reason = ring_vnet_check(&rec->vnet, frame_len);
		if (unlikely(reason >= 0)) {
			ring_count_drop(r, reason);
			r->own += rsize;
			continue;
		}
		rec->frame = r->data + off + sizeof(h) + RING_VNET_HDR_LEN;
		ring_copy_in(rec->l2, rec->frame, RING_ETH_HLEN);
		rec->frame_len = frame_len;
		rec->pos = r->own;
		r->own += rsize;
		r->stats.records++;
		r->stats.bytes += frame_len;
		return 0;
	}
}

/**
 * ring_release() - hand back the space of every record peeked so far
 * @r:		consumer handle
 *
 * One release-store for the burst; the space pipe is written only if
 * the producer has said it sleeps on a full ring. Frames from ring_peek()
 * must not be touched after this.
 *
 * Return: 0, -EINVAL if @r is not a consumer (it would publish its own
 * position as cons), or -errno from the wakeup pipe write
 */
int ring_release(struct ring *r)
{
	if (unlikely(r->role != RING_CONSUMER))
		return -EINVAL;
	if (r->own == r->published)
		return 0;
	__atomic_store_n(&r->ctrl->cons, r->own, __ATOMIC_RELEASE);
	r->published = r->own;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&r->ctrl->prod_waiting, __ATOMIC_RELAXED))
		return ring_kick(r);
	return 0;
}

/**
 * ring_write_fd() - write records to @fd, one write per frame
 * @r:		consumer handle
 * @fd:		non-blocking descriptor taking a 12-byte vnet header before
 *		each frame (a TAP with IFF_VNET_HDR)
 * @max:	most frames to write
 * @count:	frames written or dropped by @fd, out
 *
 * The validated private vnet header goes out with the frame straight from
 * ring memory (writev). A frame @fd refuses (other than EAGAIN) is
 * consumed: a bad frame must not block the ring (a TAP that is down
 * answers EIO, and its frames are dropped like a NIC's). Releases what it
 * wrote.
 *
 * Return: 0 when the ring ran dry, -EAGAIN when @fd is full or @max was
 * reached (the unwritten record stays), -errno for a dead @fd
 */
int ring_write_fd(struct ring *r, int fd, unsigned int max, unsigned int *count)
{
	struct ring_rec rec;
	struct iovec iov[2];
	unsigned int n = 0;
	int rc = 0;

	while (n < max) {
		rc = ring_peek(r, &rec);
		if (rc < 0) {
			rc = rc == -EAGAIN ? 0 : rc;
			break;
		}
		iov[0].iov_base = &rec.vnet;
		iov[0].iov_len = RING_VNET_HDR_LEN;
		iov[1].iov_base = (void *)rec.frame;
		iov[1].iov_len = rec.frame_len;
		if (writev(fd, iov, 2) < 0 &&
		    (errno == EAGAIN || errno == EINTR || errno == EBADF ||
		     errno == EBADFD)) {
			/* Not consumed: un-peek this record alone. The PADs and
			 * dropped records ring_peek() passed on the way are
			 * consumed and counted for good; rewinding before them
			 * would count them again on every retry.
			 */
			rc = errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
			r->own = rec.pos;
			r->stats.records--;
			r->stats.bytes -= rec.frame_len;
			break;
		}
		n++;
		rc = -EAGAIN;
	}
	*count = n;
	ring_release(r);
	return n == max ? -EAGAIN : rc;
}

/* Waiting ------------------------------------------------------------------ */

/**
 * ring_ready() - can this side make progress now?
 * @r:		handle
 * @need:	producer: payload bytes it wants to reserve (0: the largest
 *		record); ignored for a consumer
 *
 * Return: 1 if a consumer has published data / a producer has room, else 0
 */
int ring_ready(struct ring *r, uint32_t need)
{
	if (r->role == RING_CONSUMER) {
		if (r->own != r->peer)
			return 1;
		ring_peer_prod(r);
		return r->own != r->peer;
	}
	if (!need)
		need = RING_LEN_MAX;
	if (ring_room(r, need))
		return 1;
	ring_peer_cons(r);
	return ring_room(r, need) != 0;
}

/**
 * ring_used() - bytes of the data area in use: filled by the producer and
 * not yet released by the consumer
 * @r:		either side's handle
 *
 * A producer reads the consumer's position as ring_reserve() does, and
 * counts records committed but not yet flushed; a consumer reads the
 * producer's as ring_peek() does (validated: a bad one is ignored and
 * counted once) and counts what it peeked but not yet released. Changes
 * nothing of the ring's protocol. Call it from the thread that uses @r.
 *
 * Return: bytes used, 0 to the data size
 */
uint64_t ring_used(struct ring *r)
{
	if (r->role == RING_PRODUCER) {
		ring_peer_cons(r);
		return r->own - r->peer;
	}
	ring_peer_prod(r);
	return r->peer - r->published;
}

/**
 * ring_arm() - say we are about to sleep, unless there is work
 * @r:		handle
 * @need:	as for ring_ready()
 *
 * Sets our waiting flag, then (full fence) re-checks the peer's position.
 * After a 0 return the caller may sleep on ring_fileno() until it is
 * readable, then must call ring_disarm().
 *
 * Return: 0 if armed, 1 if there is work now (not armed)
 */
int ring_arm(struct ring *r, uint32_t need)
{
	uint32_t *flag = r->role == RING_CONSUMER ? &r->ctrl->cons_waiting
						  : &r->ctrl->prod_waiting;

	__atomic_store_n(flag, 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (ring_ready(r, need)) {
		__atomic_store_n(flag, 0, __ATOMIC_RELAXED);
		return 1;
	}
	r->stats.sleeps++;
	return 0;
}

/**
 * ring_arm_below() - a producer says it sleeps until the ring holds less
 * than @bytes, unless it does now
 * @r:		producer handle
 * @bytes:	ring_used() below which it has work (its byte limit, dql.h)
 *
 * As ring_arm(), with ring_used() for the check: the consumer's every
 * release while the flag is set writes the space pipe.
 *
 * Return: 0 if armed, 1 if the ring holds less now (not armed), -EINVAL
 * for a consumer
 */
int ring_arm_below(struct ring *r, uint64_t bytes)
{
	if (r->role != RING_PRODUCER)
		return -EINVAL;
	__atomic_store_n(&r->ctrl->prod_waiting, 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (ring_used(r) < bytes) {
		__atomic_store_n(&r->ctrl->prod_waiting, 0, __ATOMIC_RELAXED);
		return 1;
	}
	r->stats.sleeps++;
	return 0;
}

/**
 * ring_disarm() - clear our waiting flag and drain our wakeup pipe after a sleep
 * @r:		handle
 */
void ring_disarm(struct ring *r)
{
	if (r->role == RING_CONSUMER)
		__atomic_store_n(&r->ctrl->cons_waiting, 0, __ATOMIC_RELAXED);
	else
		__atomic_store_n(&r->ctrl->prod_waiting, 0, __ATOMIC_RELAXED);
	ring_drain(r->wait_fd);
}

/**
 * ring_fileno() - the descriptor this side sleeps on
 * @r:		handle
 *
 * Return: the read end of the data pipe for a consumer, of the space pipe
 * for a producer
 */
int ring_fileno(const struct ring *r)
{
	return r->wait_fd;
}

/**
 * ring_wait() - wait until this side can make progress
 * @r:		handle
 * @need:	as for ring_ready()
 * @timeout_ms:	-1 for no limit
 *
 * Arms and sleeps on its wakeup pipe (ring_arm(), then poll()).
 *
 * Return: 0 when ready, -ETIMEDOUT, or -errno from poll()
 */
int ring_wait(struct ring *r, uint32_t need, int timeout_ms)
{
	struct pollfd pfd = { .fd = ring_fileno(r), .events = POLLIN };
	uint64_t deadline = 0, now;
	int rc, left = timeout_ms;

	if (ring_ready(r, need))
		return 0;
	if (timeout_ms >= 0)
		deadline = util_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	for (;;) {
		if (ring_arm(r, need))
			return 0;
		rc = poll(&pfd, 1, left);
		ring_disarm(r);
		if (rc < 0 && errno != EINTR)
			return -errno;
		if (ring_ready(r, need))
			return 0;
		if (timeout_ms >= 0) {
			now = util_now_ns();
			if (now >= deadline)
				return -ETIMEDOUT;
			left = (int)((deadline - now + 999999) / 1000000);
		}
	}
}

/**
 * ring_violations() - how many violations this handle counted, all reasons
 * @r:		handle
 *
 * The sum of ring_get_stats()'s @drops, without copying them: the switch
 * checks it after every burst.
 *
 * Return: the count
 */
uint64_t ring_violations(const struct ring *r)
{
	return r->violations;
}

/**
 * ring_get_stats() - copy out a handle's counters
 * @r:		handle
 * @st:		out
 */
void ring_get_stats(const struct ring *r, struct ring_stats *st)
{
	*st = r->stats;
}
