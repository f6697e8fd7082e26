/* SPDX-License-Identifier: MIT */
/* uplink.h - the hosting daemon's hold on the NIC: one AF_PACKET socket
 *
 * The patent's I/O adapter device driver, from userspace: an AF_PACKET
 * SOCK_RAW socket bound to the uplink's ifindex, with
 *  - PACKET_VNET_HDR: a 10-byte struct virtio_net_hdr travels with every
 *    frame, so GSO frames (up to 64 KiB) and partial checksums pass whole;
 *  - PACKET_IGNORE_OUTGOING: our own transmissions are not received back;
 *  - an RX ring, mmap()ed: TPACKET_V2 by default, one 64 KiB-capable slot
 *    per frame and a wakeup per frame; TPACKET_V3 on request (dense blocks,
 *    but a block is handed over only when full or when its timer fires, so
 *    a lone frame waits; see docs/kernel-facts.md for the numbers);
 *  - PACKET_ADD_MEMBERSHIP: PACKET_MR_UNICAST per partition MAC (a device
 *    without a unicast filter goes promiscuous by itself), PACKET_MR_ALLMULTI,
 *    and PACKET_MR_PROMISC on request;
 *  - transmit with sendmmsg(), each message gathered from three pieces:
 *    the private 10-byte vnet header, the private copy of the frame's
 *    first bytes (the headers the guard checked, with an 802.1Q tag
 *    inserted for an access port: up to UPLINK_TX_HDR_MAX bytes, or, for
 *    one message of a batch at a time, up to UPLINK_TX_HDR_LONG: a DHCP
 *    message the guard read whole), and the rest of the frame straight
 *    from the partition's ring memory.
 *
 * A received frame that the ring slot could not hold whole (tp_snaplen <
 * tp_len) is never passed on truncated: uplink_rx_next() drops and counts it.
 *
 * One thread (the switch's data plane) uses an uplink at a time; the
 * membership calls are plain setsockopt()s and safe from any thread.
 */
#ifndef VNETSHARE_UPLINK_H
#define VNETSHARE_UPLINK_H

#include <stdint.h>

#include "ring_abi.h"

/* cdef: begin */
#define UPLINK_VNET_HDR_LEN	10u	/* struct virtio_net_hdr, PACKET_VNET_HDR */
#define UPLINK_TX_BATCH		64u	/* messages per sendmmsg() */
#define UPLINK_TX_HDR_MAX	128u	/* private head bytes of a message */
#define UPLINK_TX_HDR_LONG	1514u	/* ... of the batch's one long head */
#define UPLINK_VLAN_HLEN	4u	/* an 802.1Q tag: TPID 0x8100, TCI */
#define UPLINK_VID_MAX		4094u

/* struct uplink_config.version */
#define UPLINK_TPACKET_V2	2u
#define UPLINK_TPACKET_V3	3u

/* struct uplink_config.flags */
#define UPLINK_F_PROMISC	0x1u	/* PACKET_MR_PROMISC as well */
#define UPLINK_F_NO_ALLMULTI	0x2u	/* skip PACKET_MR_ALLMULTI */
#define UPLINK_F_QDISC_BYPASS	0x4u	/* PACKET_QDISC_BYPASS (not with SW GSO) */

/**
 * struct uplink_config - how to set up the socket; zero fields take defaults
 * @version:	UPLINK_TPACKET_V2 (default) or UPLINK_TPACKET_V3
 * @block_size:	RX ring block size, a multiple of the page size
 *		(default: 4 MiB for V2, 1 MiB for V3)
 * @block_nr:	RX ring blocks (default: 8 for V2, 16 for V3)
 * @frame_size:	V2 slot size, multiple of 16, big enough for a 64 KiB frame
 *		and its headers (default 66048); ignored for V3
 * @block_tov_ms: V3 block retire timeout in ms (default 1); ignored for V2
 * @sndbuf:	SO_SNDBUFFORCE bytes (default 4 MiB)
 * @flags:	UPLINK_F_* bits
 */
struct uplink_config {
	uint32_t version;
	uint32_t block_size;
	uint32_t block_nr;
	uint32_t frame_size;
	uint32_t block_tov_ms;
	uint32_t sndbuf;
	uint32_t flags;
};

/**
 * struct uplink_frame - one received frame, in the RX ring
 * @vnet:	the kernel's 10-byte virtio_net_hdr, right before @mac
 * @mac:	the Ethernet frame
 * @len:	its length (== snaplen: truncated frames are never returned)
 * @vlan_tci:	VLAN tag the NIC stripped, if @vlan_valid
 * @vlan_valid:	the frame came with a VLAN tag (not in @mac)
 *
 * Valid until the next uplink_rx_next() or uplink_rx_release().
 */
struct uplink_frame {
	const uint8_t *vnet;
	const uint8_t *mac;
	uint32_t len;
	uint16_t vlan_tci;
	uint16_t vlan_valid;
};

/**
 * struct uplink_stats - counters of one uplink
 * @rx_frames:	frames taken from the RX ring (truncated ones not counted)
 * @rx_bytes:	their bytes
 * @rx_truncated: frames larger than a ring slot, dropped
 * @rx_kernel_drops: frames the kernel dropped for want of a free slot
 *		(PACKET_STATISTICS tp_drops, accumulated)
 * @rx_wakeups:	V3 blocks handed over (stays 0 with V2)
 * @tx_frames:	frames the kernel accepted
 * @tx_bytes:	their bytes
 * @tx_msgsize:	frames refused with EMSGSIZE (over the MTU, not GSO)
 * @tx_errors:	frames refused for any other reason (ENOBUFS, EAGAIN, ...)
 * @tx_calls:	sendmmsg() calls
 * @socket_errors: errors the socket reported (ENETDOWN when the link goes
 *		down or away), read and cleared by uplink_clear_error()
 */
struct uplink_stats {
	uint64_t rx_frames;
	uint64_t rx_bytes;
	uint64_t rx_truncated;
	uint64_t rx_kernel_drops;
	uint64_t rx_wakeups;
	uint64_t tx_frames;
	uint64_t tx_bytes;
	uint64_t tx_msgsize;
	uint64_t tx_errors;
	uint64_t tx_calls;
	uint64_t socket_errors;
};

/**
 * struct uplink_tx_result - what one uplink_tx_flush() did
 * @sent:	frames accepted
 * @bytes:	their bytes
 * @msgsize:	frames refused with EMSGSIZE
 * @errors:	frames refused otherwise
 */
struct uplink_tx_result {
	uint32_t sent;
	uint32_t msgsize;
	uint32_t errors;
	uint32_t pad;
	uint64_t bytes;
};

struct uplink;

int uplink_open(struct uplink **out, int ifindex,
		const struct uplink_config *cfg);
void uplink_close(struct uplink *u);
int uplink_fd(const struct uplink *u);
int uplink_mtu(const struct uplink *u, uint32_t *mtu);
int uplink_add_mac(struct uplink *u, const uint8_t *mac);
int uplink_del_mac(struct uplink *u, const uint8_t *mac);

int uplink_rx_next(struct uplink *u, struct uplink_frame *f);
void uplink_rx_release(struct uplink *u);

int uplink_tx_queue(struct uplink *u, const struct ring_vnet_hdr *vnet,
		    const uint8_t *hdr, uint32_t hdr_len, uint16_t vid,
		    const uint8_t *frame, uint32_t frame_len);
int uplink_tx_flush(struct uplink *u, struct uplink_tx_result *res);

int uplink_clear_error(struct uplink *u, int *err);
int uplink_get_stats(struct uplink *u, struct uplink_stats *st);
/* cdef: end */

#endif /* VNETSHARE_UPLINK_H */
