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
 * Wakeups. Two eventfds per ring: "data" (consumer sleeps on it) and "space"
 * (producer sleeps on it when the ring is full). Before sleeping a side sets
 * its *_waiting flag, issues a full fence and re-checks the peer's position
 * (ring_arm()); after publishing, a side issues a full fence and writes the
 * peer's eventfd only if the peer's flag is set. This is the store-fence-load
 * handshake on both sides: either the sleeper sees the new position, or the
 * waker sees the flag, so no wakeup is lost, and a peer that is busy (flag
 * clear) costs no syscall at all.
 *
 * Trust. The consumer treats everything in the ring as hostile (the agent
 * side may be a hostile partition), following the rules of DESIGN.md:
 *  1. the peer's position is a hint: it must be 64-byte aligned, never move
 *     backwards and never claim more than the ring size; a bad one is ignored
 *     and counted once;
 *  2. the record header, vnet header and Ethernet header are copied to
 *     private memory once (struct ring_rec) and only the copies are used;
 *  3. bounds are computed in 64 bits: len <= RING_LEN_MAX, the record lies
 *     within the published range and within the data area, no unknown flag
 *     bits, vnet_len == 12, len >= vnet_len + 14;
 *  4. the vnet header is checked: flags, gso_type, gso_size, hdr_len and
 *     csum_start + csum_offset against the frame length;
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
 * @kicks:	eventfd writes that woke the peer
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

int ring_create(uint64_t data_size, int *memfd, int *data_efd, int *space_efd);
int ring_attach(struct ring **out, int memfd, int data_efd, int space_efd,
		int role, uint64_t data_size);
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
int ring_arm(struct ring *r, uint32_t need);
void ring_disarm(struct ring *r);
int ring_wait(struct ring *r, uint32_t need, int timeout_ms);
int ring_fileno(const struct ring *r);
void ring_set_spin(struct ring *r, unsigned int spin_us);

void ring_get_stats(const struct ring *r, struct ring_stats *st);
uint64_t ring_violations(const struct ring *r);
const char *ring_drop_name(unsigned int reason);

#endif /* VNETSHARE_RING_H */
