/* SPDX-License-Identifier: MIT */
/* ring_abi.h - the shared-memory layout of a vnetshare ring, as both sides map it
 *
 * Only fixed-width types and constants live here: this is the contract between
 * the hosting daemon and a partition agent, who may run different builds.
 * Every struct is followed by a static assertion of its size and offsets, so a
 * change that moves a byte fails the build instead of corrupting a peer.
 *
 * The memfd of one ring (one direction):
 *
 *   0            128           256           384          4096        4096+size
 *   +------------+-------------+-------------+----- ... ---+---- ... ---+
 *   | identity   | producer    | consumer    |  (unused)   | data area |
 *   | magic,     | prod,       | cons,       |             | records   |
 *   | version,   | prod_waiting| cons_waiting|             |           |
 *   | data_size  |             |             |             |           |
 *   +------------+-------------+-------------+----- ... ---+---- ... ---+
 *   written once  producer's    consumer's
 *   by the daemon cache line    cache line
 *
 * A record in the data area (offsets from the record's start, all 64-byte
 * aligned; total size is RING_REC_SIZE(len)):
 *
 *   +0  struct ring_rec_hdr   len, flags, vnet_len       16 bytes
 *   +16 struct ring_vnet_hdr  virtio_net_hdr_v1           12 bytes
 *   +28 Ethernet frame        len - vnet_len bytes
 *   ... padding up to the next multiple of 64
 */
#ifndef VNETSHARE_RING_ABI_H
#define VNETSHARE_RING_ABI_H

#include <stddef.h>
#include <stdint.h>

/* cdef: begin */
#define RING_MAGIC		0x31474e4952534e56ULL	/* "VNSRING1", little endian */
#define RING_VERSION		1u
#define RING_CTRL_SIZE		4096u	/* page 0: struct ring_ctrl */
#define RING_LINE		128u	/* false-sharing distance (two x86 lines) */
#define RING_ALIGN		64u	/* every record starts at a multiple of this */

#define RING_SIZE_MIN		(256u * 1024)		/* data area, power of two */
#define RING_SIZE_MAX		(1u << 30)
#define RING_SIZE_DEFAULT	(4u * 1024 * 1024)

#define RING_VNET_HDR_LEN	12u	/* struct virtio_net_hdr_v1 (num_buffers) */
#define RING_ETH_HLEN		14u
#define RING_FRAME_MIN		RING_ETH_HLEN
#define RING_FRAME_MAX		(65535u + 18u)	/* 64 KiB IP datagram + VLAN Ethernet header */
#define RING_LEN_MAX		(RING_VNET_HDR_LEN + RING_FRAME_MAX)
/* cdef: end */

/* Bytes a record of payload length @len occupies in the data area. */
#define RING_REC_SIZE(len) \
	((((uint64_t)(len)) + sizeof(struct ring_rec_hdr) + RING_ALIGN - 1) & \
	 ~(uint64_t)(RING_ALIGN - 1))
#define RING_REC_MAX		RING_REC_SIZE(RING_LEN_MAX)

/* cdef: begin */
/* struct ring_rec_hdr.flags */
#define RING_REC_PAD		0x0001u	/* filler up to the end of the data area */
#define RING_REC_FLAGS_KNOWN	RING_REC_PAD
/* cdef: end */

/**
 * struct ring_ctrl - control block, page 0 of the memfd
 * @magic:	RING_MAGIC
 * @version:	RING_VERSION
 * @hdr_size:	RING_CTRL_SIZE, offset of the data area
 * @data_size:	size of the data area, a power of two; written once by the
 *		creator, never re-read by a side that keeps its own copy
 * @prod:	producer position, free-running byte count (producer writes)
 * @prod_waiting: non-zero while the producer sleeps on the space pipe
 * @cons:	consumer position, free-running byte count (consumer writes)
 * @cons_waiting: non-zero while the consumer sleeps on the data pipe
 */
struct ring_ctrl {
	uint64_t magic;
	uint32_t version;
	uint32_t hdr_size;
	uint64_t data_size;
	uint8_t  pad0[RING_LINE - 24];

	uint64_t prod;
	uint32_t prod_waiting;
	uint8_t  pad1[RING_LINE - 12];

	uint64_t cons;
	uint32_t cons_waiting;
	uint8_t  pad2[RING_LINE - 12];
};
_Static_assert(sizeof(struct ring_ctrl) == 3 * RING_LINE, "ring_ctrl size");
_Static_assert(offsetof(struct ring_ctrl, prod) == RING_LINE, "prod line");
_Static_assert(offsetof(struct ring_ctrl, cons) == 2 * RING_LINE, "cons line");
_Static_assert(sizeof(struct ring_ctrl) <= RING_CTRL_SIZE, "ctrl fits page 0");

/**
 * struct ring_rec_hdr - header of every record
 * @len:	bytes of payload after this header: vnet header + frame
 *		(for a PAD record: ignored, the record ends at the wrap)
 * @flags:	RING_REC_* bits; any other bit is a violation
 * @vnet_len:	RING_VNET_HDR_LEN for data records
 * @reserved:	written as zero, ignored by readers
 */
struct ring_rec_hdr {
	uint32_t len;
	uint16_t flags;
	uint16_t vnet_len;
	uint64_t reserved;
};
_Static_assert(sizeof(struct ring_rec_hdr) == 16, "ring_rec_hdr size");
/* An empty ring takes the largest record wherever its position stands,
 * even right after a PAD of almost one largest record. */
_Static_assert(2 * RING_REC_MAX <= RING_SIZE_MIN, "smallest ring too small");

/* cdef: begin */
/* struct ring_vnet_hdr.flags, .gso_type: the virtio_net values */
#define RING_VNET_F_NEEDS_CSUM	1u
#define RING_VNET_F_DATA_VALID	2u
#define RING_VNET_GSO_NONE	0u
#define RING_VNET_GSO_TCPV4	1u
#define RING_VNET_GSO_UDP	3u	/* UFO: rejected, obsolete */
#define RING_VNET_GSO_TCPV6	4u
#define RING_VNET_GSO_UDP_L4	5u
#define RING_VNET_GSO_ECN	0x80u

/**
 * struct ring_vnet_hdr - struct virtio_net_hdr_v1, host byte order
 *
 * The 12-byte form a TAP reads and writes after TUNSETVNETHDRSZ(12), so the
 * agent moves it between TAP and ring untouched.
 */
struct ring_vnet_hdr {
	uint8_t  flags;
	uint8_t  gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
};
/* cdef: end */
_Static_assert(sizeof(struct ring_vnet_hdr) == RING_VNET_HDR_LEN, "vnet hdr size");

#endif /* VNETSHARE_RING_ABI_H */
