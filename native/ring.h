/* SPDX-License-Identifier: MIT */
/* ring.h - single-producer single-consumer frame ring over a sealed memfd
 *
 * DOC: Theory of operation
 *
 * A ring carries Ethernet frames one way between two processes: the hosting
 * daemon and a partition agent. It is the partition manager's DMA path of
 * US 7,383,555: a partition's frames sit in ring memory that both map, and
 * the daemon hands them to the NIC from there. A partition has two rings,
 * A2H (agent to host) and H2A (host to agent).
 *
 * Memory. The daemon creates one memfd per ring (ring_create()) with
 * MFD_ALLOW_SEALING and seals it with F_SEAL_SHRINK | F_SEAL_GROW |
 * F_SEAL_SEAL, so neither side can truncate it under the other's mapping.
 * Page 0 is the control block (struct ring_ctrl in ring_abi.h), a data area
 * of a power-of-two size (default 4 MiB) follows. Both sides mmap the whole
 * memfd; ring_attach() refuses a memfd that is not sealed or whose size does
 * not match.
 *
 * Records. Variable length, 64-byte aligned: a 16-byte header (len, flags,
 * vnet_len), the 12-byte virtio_net header, the Ethernet frame (up to 64 KiB;
 * a GSO frame is one record). A 60-byte frame costs 128 bytes of ring, a
 * 64 KiB one a single record. When the next record does not fit before the
 * end of the data area, the producer writes a PAD record there and starts
 * again at offset 0:
 *
 *        cons                       prod                      (data area)
 *   0     v                           v                          size
 *   |.....|rec|rec|rec.....|rec|rec|...|..........free.........|PAD|
 *   |     \_________ published, owned by the consumer ________/     |
 *
 * Positions. prod and cons are free-running u64 byte counts: they only grow
 * and are masked with (size - 1) on use, so "full" (prod - cons == size) and
 * "empty" (prod == cons) never look alike and never need a spare slot. The
 * producer owns prod, the consumer owns cons; they live on separate 128-byte
 * lines of the control block, so each line is written by one side only.
 *
 * Ordering. The producer writes records, then publishes a whole burst with
 * one release-store of prod (ring_flush()). The consumer acquire-loads prod,
 * reads the records, and hands the space back with one release-store of cons
 * (ring_release()). Nothing else orders the data: no volatile, no locks.
 * Each side keeps its own position in private memory and only writes it out;
 * it never reads its own position back from shared memory, where the peer
 * could have changed it.
 *
 * Wakeups. Two pipes per ring: "data" (the consumer sleeps on its read
 * end, the producer writes a byte to wake it) and "space" (the producer
 * sleeps on its read end when the ring is full, the consumer wakes it).
 * Before sleeping a side sets its *_waiting flag, issues a full fence and
 * re-checks the peer's position (ring_arm()); after publishing, a side
 * issues a full fence and writes the peer's pipe only if the peer's flag is
 * set. This is the store-fence-load handshake on both sides: either the
 * sleeper sees the new position, or the waker sees the flag, so no wakeup is
 * lost, and a peer that is busy (flag clear) costs no syscall at all.
 *
 * Descriptors. Each side holds only its own ends (struct ring_end: the
 * memfd, the read end it sleeps on, the write end it kicks), and no file
 * description is shared between the two sides except the memfd's. This is
 * why wakeups are pipes and not eventfds: an eventfd passed over
 * SCM_RIGHTS is one open file description in both processes, so its
 * O_NONBLOCK flag is shared, and an agent that cleared it (F_SETFL) made the
 * daemon's next read() or write() block its only data-plane thread. What
 * each descriptor the daemon and an agent have in common allows:
 *  - the memfd: one description, shared. File status flags do not matter
 *    to a mapping; the seals (F_SEAL_SEAL among them) stop truncation and
 *    new seals; fallocate(PUNCH_HOLE) only zeroes pages, which is a write
 *    the peer could make anyway. The daemon never read()s or write()s it.
 *  - the wakeup pipes: each side's ends are its own descriptions, made
 *    O_NONBLOCK by ring_create() (and re-checked by ring_attach()). An
 *    agent may clear O_NONBLOCK on its ends, reopen them through /proc,
 *    fill a pipe or resize it (F_SETPIPE_SZ): the daemon's write then
 *    fails with EAGAIN (a wakeup is pending anyway) and its drain reads at
 *    most RING_DRAIN_MAX bytes, once, and never waits. A flood of bytes
 *    only makes the daemon's loop look at that ring again, bounded work.
 *    The daemon keeps the agent's ends open only to hand them to a
 *    restarted agent; it never does I/O on them, and holding them open
 *    means no write of the daemon's can raise EPIPE. F_SETOWN/O_ASYNC on
 *    an agent's end signal only whom the agent's own uid may signal.
 *  - the TAP (vnetshare/manager.py hands it to the agent): the daemon
 *    never does I/O on it; the pump sets O_NONBLOCK itself, so flags left
 *    by a dead agent cannot block its successor; what the TAP's ioctls can
 *    change concerns the agent's own partition only, and the frames it
 *    makes are validated in the ring like any others.
 *  - the agent's control socketpair: two descriptions, one per end; the
 *    daemon reads its end once, with a timeout, for the agent's "ready",
 *    and afterwards only closes it.
 *
 * Trust. The consumer treats everything in the ring as hostile (the agent
 * side may be a hostile partition), following these rules (summed up in
 * docs/architecture.md, "The ring"):
 *  1. the peer's position is a hint: it must be 64-byte aligned, never move
 *     backwards and never claim more than the ring size; a bad one is ignored
 *     and counted once;
 *  2. the record header, vnet header and Ethernet header are copied to
 *     private memory once (struct ring_rec) and only the copies are used;
 *  3. bounds are computed in 64 bits: len <= RING_LEN_MAX, the record lies
 *     within the published range and within the data area, no unknown flag
 *     bits, vnet_len == 12, len >= vnet_len + 14;
 *  4. the vnet header is checked: flags, gso_type, gso_size, hdr_len and
 *     csum_start + csum_offset against the frame length (bounds only:
 *     whether they are this frame's own checksum field and segments is
 *     the guard's question, guard.h);
 *  5..7. anti-spoofing, fairness and disconnection are the daemon's job
 *     (switch.c); here, every violation drops the record, is counted under
 *     its own reason (enum ring_drop), and the consumer goes on with the
 *     next well-formed record. A record header that cannot be trusted makes
 *     the consumer skip to the published producer position, the next point
 *     it knows a record starts. Nothing in the ring can make the consumer
 *     read outside its mapping, loop or crash.
 *
 * Batching. A producer calls ring_reserve() / ring_commit() per record (or
 * ring_read_fd() to read a TAP straight into reserved records, no staging
 * copy) and ring_flush() once per burst. A consumer calls ring_peek() per
 * record and ring_release() once per burst; a peeked frame stays valid in
 * ring memory until ring_release(), so the daemon can sendmsg() it straight
 * to the NIC.
 *
 * Errors. Functions return 0 or -errno; counts come back through
 * out-parameters. No function allocates after ring_attach(), none exits.
 */
#ifndef VNETSHARE_RING_H
#define VNETSHARE_RING_H

#include <stdint.h>

#include "ring_abi.h"

/* cdef: begin */
struct ring;

/* Which side of the ring a handle is: it decides which position is "own". */
enum ring_role {
	RING_PRODUCER = 1,
	RING_CONSUMER = 2,
};

/* Why the consumer dropped a record or ignored a position. */
enum ring_drop {
	RING_DROP_POS_MISALIGNED = 0,	/* prod not a multiple of 64 */
	RING_DROP_POS_BACKWARDS,	/* prod moved backwards */
	RING_DROP_POS_BEYOND,		/* prod - cons > size */
	RING_DROP_FLAGS,		/* unknown record flag bits */
	RING_DROP_LEN_MAX,		/* len > RING_LEN_MAX */
	RING_DROP_LEN_SHORT,		/* len < vnet_len + 14 */
	RING_DROP_VNET_LEN,		/* vnet_len != 12 */
	RING_DROP_PAST_PUBLISHED,	/* record runs past prod */
	RING_DROP_PAST_END,		/* record runs past the data area */
	RING_DROP_VNET_FLAGS,		/* vnet flags other than CSUM/VALID */
	RING_DROP_VNET_GSO_TYPE,	/* gso_type not NONE/TCPV4/TCPV6/UDP_L4 */
	RING_DROP_VNET_GSO_SIZE,	/* GSO with gso_size 0 */
	RING_DROP_VNET_HDR_LEN,		/* hdr_len past the frame */
	RING_DROP_VNET_CSUM,		/* csum_start + csum_offset + 2 past the frame */
	RING_DROP__MAX
};

/**
 * struct ring_stats - counters of one handle, kept in private memory
 * @records:	data records produced (flushed or not) or consumed
 * @bytes:	frame bytes in those records (vnet header not counted)
 * @pads:	PAD records written or skipped
 * @full:	ring_reserve() calls that found no room
 * @kicks:	wakeup pipe writes that woke the peer
 * @sleeps:	times this side armed its waiting flag and slept
 * @skipped_bytes: ring bytes skipped after an untrustworthy record header
 * @short_reads: ring_read_fd() reads too short to be a frame, dropped
 * @drops:	violations by enum ring_drop reason
 */
struct ring_stats {
	uint64_t records;
	uint64_t bytes;
	uint64_t pads;
	uint64_t full;
	uint64_t kicks;
	uint64_t sleeps;
	uint64_t skipped_bytes;
	uint64_t short_reads;
	uint64_t drops[RING_DROP__MAX];
};

/**
 * struct ring_rec - a consumed record, as private validated copies
 * @vnet:	copy of the virtio_net header, validated
 * @l2:		copy of the Ethernet header (destination, source, ethertype)
 * @frame_len:	length of the frame, >= RING_ETH_HLEN
 * @frame:	the frame in ring memory, valid until ring_release(); the peer
 *		can still write there, so decide nothing on its bytes: decide
 *		on @vnet and @l2
 * @pos:	ring position of the record (for tests and tracing)
 */
struct ring_rec {
	struct ring_vnet_hdr vnet;
	uint8_t l2[RING_ETH_HLEN];
	uint32_t frame_len;
	const uint8_t *frame;
	uint64_t pos;
};

/* Bytes one drain of a wakeup pipe reads at most (one read(), never more). */
#define RING_DRAIN_MAX	256

/**
 * struct ring_fds - every descriptor of one ring, as ring_create() makes them
 * @memfd:	the sealed memfd (both sides map it)
 * @data_rd:	"data" pipe, read end: the consumer sleeps on it
 * @data_wr:	"data" pipe, write end: the producer wakes the consumer
 * @space_rd:	"space" pipe, read end: the producer sleeps on it
 * @space_wr:	"space" pipe, write end: the consumer wakes the producer
 *
 * The creator (the daemon) keeps them all and hands one side's ends to the
 * peer (see struct ring_end); all are O_NONBLOCK and O_CLOEXEC.
 */
struct ring_fds {
	int memfd;
	int data_rd;
	int data_wr;
	int space_rd;
	int space_wr;
};

/**
 * struct ring_end - what one side of a ring needs, and all it may get
 * @memfd:	the sealed memfd
 * @wait_fd:	read end this side sleeps on (consumer: data_rd, producer:
 *		space_rd)
 * @kick_fd:	write end this side wakes its peer with (consumer: space_wr,
 *		producer: data_wr)
 */
struct ring_end {
	int memfd;
	int wait_fd;
	int kick_fd;
};

int ring_create(uint64_t data_size, struct ring_fds *fds);
void ring_fds_end(const struct ring_fds *fds, int role, struct ring_end *end);
int ring_attach(struct ring **out, const struct ring_end *end, int role,
		uint64_t data_size);
void ring_detach(struct ring *r);
uint64_t ring_data_size(const struct ring *r);
int ring_role(const struct ring *r);

int ring_reserve(struct ring *r, uint32_t len, uint8_t **payload);
int ring_commit(struct ring *r, uint32_t len);
int ring_flush(struct ring *r);
int ring_read_fd(struct ring *r, int fd, unsigned int max, unsigned int *count);

int ring_peek(struct ring *r, struct ring_rec *rec);
int ring_release(struct ring *r);
int ring_write_fd(struct ring *r, int fd, unsigned int max, unsigned int *count);

int ring_ready(struct ring *r, uint32_t need);
uint64_t ring_used(struct ring *r);
int ring_arm(struct ring *r, uint32_t need);
int ring_arm_below(struct ring *r, uint64_t bytes);
void ring_disarm(struct ring *r);
int ring_wait(struct ring *r, uint32_t need, int timeout_ms);
int ring_fileno(const struct ring *r);

void ring_get_stats(const struct ring *r, struct ring_stats *st);
uint64_t ring_violations(const struct ring *r);
const char *ring_drop_name(unsigned int reason);
/* cdef: end */

#endif /* VNETSHARE_RING_H */
