// SPDX-License-Identifier: MIT
/* uplink.c - the hosting daemon's hold on the NIC: one AF_PACKET socket
 *
 * What the kernel does, and the probe that shows it (tests/netns/probes/,
 * numbers in docs/kernel-facts.md):
 *  - with PACKET_VNET_HDR, an RX ring slot holds the 10-byte virtio_net_hdr
 *    right before the MAC header, at tp_mac - 10 (test_probe_packet.py);
 *  - a GSO frame arrives as one slot of up to 64 KiB + 14; a slot too small
 *    shows tp_snaplen < tp_len (we drop those, counted);
 *  - sendmsg() with PACKET_VNET_HDR takes the 10-byte header then the
 *    frame, gathered from any number of iovecs, and sends a 64 KiB TCPV4
 *    GSO frame as one skb (segmented by the kernel if the NIC lacks TSO);
 *    a GSO_NONE frame over the MTU fails with EMSGSIZE;
 *  - TPACKET_V2 wakes the reader per frame; TPACKET_V3 only when a block
 *    retires (full, or tp_retire_blk_tov, rounded up to a jiffy: 4 ms at
 *    HZ=250), which is why V2 is the default (test_probe_latency.py).
 *
 * V2 RX ring: block_nr blocks of block_size bytes, each holding
 * block_size / frame_size slots; a slot never crosses a block:
 *
 *   block 0                         block 1
 *   |slot 0|slot 1|...|slot k-1|pad|slot k|...
 *    tp_status: KERNEL -> (kernel fills) USER -> (we consume) KERNEL
 *
 * V3 RX ring: block_nr blocks; the kernel fills the current block with
 * packed frames (tp_next_offset chains them) and hands it over whole by
 * setting block_status to USER; we walk it and give it back whole.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/if_packet.h>

#include "uplink.h"
#include "util.h"

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING	23
#endif


#define UPLINK_V2_FRAME_DEFAULT	66048u	/* 64 KiB + 512: a 64 KiB GSO frame + headers */
#define UPLINK_V2_BLOCK_DEFAULT	(4u << 20)
#define UPLINK_V2_NR_DEFAULT	8u
#define UPLINK_V3_BLOCK_DEFAULT	(1u << 20)
#define UPLINK_V3_NR_DEFAULT	16u
#define UPLINK_SNDBUF_DEFAULT	(4u << 20)

/**
 * struct uplink_tx - the sendmmsg() batch being built
 * @msgs:	one message per frame
 * @iov:	[vnet header, private head, rest of the frame in ring memory]
 * @vnet:	private 10-byte vnet headers
 * @head:	private copies of the frames' first bytes (+ a VLAN tag)
 * @head_long:	the private copy of one message's head longer than
 *		UPLINK_TX_HDR_MAX (+ a VLAN tag), in place of its @head
 * @long_used:	a queued message uses @head_long
 * @len:	frame lengths, for the byte counters
 * @n:		messages queued
 * @res:	results of the auto-flushes since the last uplink_tx_flush()
 */
struct uplink_tx {
	struct mmsghdr msgs[UPLINK_TX_BATCH];
	struct iovec iov[UPLINK_TX_BATCH][3];
	uint8_t vnet[UPLINK_TX_BATCH][UPLINK_VNET_HDR_LEN];
	uint8_t head[UPLINK_TX_BATCH][UPLINK_TX_HDR_MAX + UPLINK_VLAN_HLEN];
	uint8_t head_long[UPLINK_TX_HDR_LONG + UPLINK_VLAN_HLEN];
	int long_used;
	uint32_t len[UPLINK_TX_BATCH];
	unsigned int n;
	struct uplink_tx_result res;
};

/**
 * struct uplink - one AF_PACKET socket on the uplink and its RX ring
 * @fd:		the socket
 * @ifindex:	uplink interface index (in the opener's namespace)
 * @version:	UPLINK_TPACKET_V2 or _V3
 * @ring:	mmap()ed RX ring
 * @ring_len:	its length
 * @block_size:	bytes per block
 * @block_nr:	blocks
 * @frame_size:	V2 slot size
 * @frames_per_block: V2 slots per block
 * @frame_nr:	V2 slots in all
 * @head:	V2: next slot to look at; V3: current block
 * @held:	V2: a slot was returned and not yet given back;
 *		V3: the current block is ours (being walked)
 * @pkt:	V3: next packet in the current block
 * @left:	V3: packets left in the current block
 * @stats:	counters
 * @tx:		transmit batch
 */
struct uplink {
	int fd;
	int ifindex;
	uint32_t version;
	uint8_t *ring;
	size_t ring_len;
	uint32_t block_size;
	uint32_t block_nr;
	uint32_t frame_size;
	uint32_t frames_per_block;
	uint32_t frame_nr;
	uint32_t head;
	int held;
	uint8_t *pkt;
	uint32_t left;
	struct uplink_stats stats;
	struct uplink_tx tx;
};

/**
 * uplink_setopt() - setsockopt(SOL_PACKET) of an int
 * @fd:		socket
 * @opt:	PACKET_* option
 * @val:	value
 *
 * Return: 0 or -errno
 */
static int uplink_setopt(int fd, int opt, int val)
{
	if (setsockopt(fd, SOL_PACKET, opt, &val, sizeof(val)) < 0)
		return -errno;
	return 0;
}

/**
 * uplink_membership() - add or drop a PACKET_MR_* membership
 * @u:		uplink
 * @op:		PACKET_ADD_MEMBERSHIP or PACKET_DROP_MEMBERSHIP
 * @type:	PACKET_MR_UNICAST, _ALLMULTI, _PROMISC
 * @mac:	address for PACKET_MR_UNICAST, else NULL
 *
 * Return: 0 or -errno
 */
static int uplink_membership(struct uplink *u, int op, int type,
			     const uint8_t *mac)
{
	struct packet_mreq mr;

	memset(&mr, 0, sizeof(mr));
	mr.mr_ifindex = u->ifindex;
	mr.mr_type = (unsigned short)type;
	if (mac) {
		mr.mr_alen = ETH_ALEN;
		memcpy(mr.mr_address, mac, ETH_ALEN);
	}
	if (setsockopt(u->fd, SOL_PACKET, op, &mr, sizeof(mr)) < 0)
		return -errno;
	return 0;
}

/**
 * uplink_ring_setup() - size, request and map the RX ring
 * @u:		uplink, @u->fd open with PACKET_VERSION set
 * @cfg:	configuration (defaults already applied)
 *
 * Return: 0 or -errno
 */
static int uplink_ring_setup(struct uplink *u, const struct uplink_config *cfg)
{
	long page = sysconf(_SC_PAGESIZE);
	struct tpacket_req3 req3;
	struct tpacket_req req;
	void *map;

	u->block_size = cfg->block_size;
	u->block_nr = cfg->block_nr;
	if (!u->block_nr || page <= 0 || u->block_size % (uint32_t)page)
		return -EINVAL;
	if (u->version == UPLINK_TPACKET_V2) {
		u->frame_size = cfg->frame_size;
		if (u->frame_size < TPACKET2_HDRLEN + RING_ETH_HLEN ||
		    u->frame_size % TPACKET_ALIGNMENT ||
		    u->frame_size > u->block_size)
			return -EINVAL;
		u->frames_per_block = u->block_size / u->frame_size;
		u->frame_nr = u->frames_per_block * u->block_nr;
		memset(&req, 0, sizeof(req));
		req.tp_block_size = u->block_size;
		req.tp_block_nr = u->block_nr;
		req.tp_frame_size = u->frame_size;
		req.tp_frame_nr = u->frame_nr;
		if (setsockopt(u->fd, SOL_PACKET, PACKET_RX_RING, &req,
			       sizeof(req)) < 0)
			return -errno;
	} else {
		memset(&req3, 0, sizeof(req3));
		req3.tp_block_size = u->block_size;
		req3.tp_block_nr = u->block_nr;
		req3.tp_frame_size = TPACKET_ALIGNMENT << 7;	/* nominal */
		req3.tp_frame_nr = (u->block_size / req3.tp_frame_size) *
				   u->block_nr;
		req3.tp_retire_blk_tov = cfg->block_tov_ms;
		if (setsockopt(u->fd, SOL_PACKET, PACKET_RX_RING, &req3,
			       sizeof(req3)) < 0)
			return -errno;
	}
	u->ring_len = (size_t)u->block_size * u->block_nr;
	map = mmap(NULL, u->ring_len, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_POPULATE, u->fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	u->ring = map;
	return 0;
}

/**
 * uplink_tx_init() - point every message of the batch at its own buffers
 * @u:		uplink
 *
 * Done once: only lengths, the frame iovec and the head's base (its own
 * @head, or @head_long) change per frame after this.
 */
static void uplink_tx_init(struct uplink *u)
{
	struct uplink_tx *tx = &u->tx;

	for (unsigned int i = 0; i < UPLINK_TX_BATCH; i++) {
		tx->iov[i][0].iov_base = tx->vnet[i];
		tx->iov[i][0].iov_len = UPLINK_VNET_HDR_LEN;
		tx->iov[i][1].iov_base = tx->head[i];
		tx->msgs[i].msg_hdr.msg_iov = tx->iov[i];
	}
}

/**
 * uplink_open() - open the AF_PACKET socket on an interface
 * @out:	new uplink, out
 * @ifindex:	interface index, in the calling thread's network namespace
 * @cfg:	configuration, or NULL for all defaults
 *
 * Order matters to the kernel: PACKET_VERSION and PACKET_VNET_HDR before
 * the ring; bind() (which starts reception) last, once the ring is mapped.
 *
 * Return: 0 or -errno (-EINVAL for a bad configuration, -ENODEV from
 * bind() for a missing interface)
 */
int uplink_open(struct uplink **out, int ifindex,
		const struct uplink_config *cfg)
{
	struct uplink_config c = { 0 };
	struct sockaddr_ll sll;
	struct uplink *u;
	int rc, sndbuf;

	if (!out || ifindex <= 0)
		return -EINVAL;
	if (cfg)
		c = *cfg;
	if (!c.version)
		c.version = UPLINK_TPACKET_V2;
	if (c.version != UPLINK_TPACKET_V2 && c.version != UPLINK_TPACKET_V3)
		return -EINVAL;
	if (c.flags & ~(UPLINK_F_PROMISC | UPLINK_F_NO_ALLMULTI |
			UPLINK_F_QDISC_BYPASS))
		return -EINVAL;
	if (!c.block_size)
		c.block_size = c.version == UPLINK_TPACKET_V2 ?
			       UPLINK_V2_BLOCK_DEFAULT : UPLINK_V3_BLOCK_DEFAULT;
	if (!c.block_nr)
		c.block_nr = c.version == UPLINK_TPACKET_V2 ?
			     UPLINK_V2_NR_DEFAULT : UPLINK_V3_NR_DEFAULT;
	if (!c.frame_size)
		c.frame_size = UPLINK_V2_FRAME_DEFAULT;
	if (!c.block_tov_ms)
		c.block_tov_ms = 1;
	if (!c.sndbuf)
		c.sndbuf = UPLINK_SNDBUF_DEFAULT;

	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->ifindex = ifindex;
	u->version = c.version;
	uplink_tx_init(u);
	/* protocol 0: nothing is received before bind() */
	u->fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->fd < 0) {
		rc = -errno;
		free(u);
		return rc;
	}
	rc = uplink_setopt(u->fd, PACKET_VERSION, c.version == UPLINK_TPACKET_V2 ?
			   TPACKET_V2 : TPACKET_V3);
	if (!rc)
		rc = uplink_setopt(u->fd, PACKET_VNET_HDR, 1);
	if (!rc)
		rc = uplink_setopt(u->fd, PACKET_IGNORE_OUTGOING, 1);
	if (!rc && (c.flags & UPLINK_F_QDISC_BYPASS))
		rc = uplink_setopt(u->fd, PACKET_QDISC_BYPASS, 1);
	if (rc)
		goto fail;
	sndbuf = (int)c.sndbuf;
	if (setsockopt(u->fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf,
		       sizeof(sndbuf)) < 0 &&
	    setsockopt(u->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) < 0) {
		rc = -errno;
		goto fail;
	}
	rc = uplink_ring_setup(u, &c);
	if (rc)
		goto fail;

	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = ifindex;
	if (bind(u->fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		rc = -errno;
		goto fail;
	}
	if (!(c.flags & UPLINK_F_NO_ALLMULTI)) {
		rc = uplink_membership(u, PACKET_ADD_MEMBERSHIP,
				       PACKET_MR_ALLMULTI, NULL);
		if (rc)
			goto fail;
	}
	if (c.flags & UPLINK_F_PROMISC) {
		rc = uplink_membership(u, PACKET_ADD_MEMBERSHIP,
				       PACKET_MR_PROMISC, NULL);
		if (rc)
			goto fail;
	}
	*out = u;
	return 0;
fail:
	uplink_close(u);
	return rc;
}

/**
 * uplink_close() - close the socket (memberships go with it), free @u
 * @u:		uplink, may be NULL
 */
void uplink_close(struct uplink *u)
{
	if (!u)
		return;
	if (u->ring)
		munmap(u->ring, u->ring_len);
	if (u->fd >= 0)
		close(u->fd);
	free(u);
}

/**
 * uplink_fd() - the socket, to poll for POLLIN (a frame or block is ready)
 * @u:		uplink
 *
 * Return: the descriptor
 */
int uplink_fd(const struct uplink *u)
{
	return u->fd;
}

/**
 * uplink_mtu() - the interface's MTU now (SIOCGIFMTU)
 * @u:		uplink
 * @mtu:	out
 *
 * Return: 0 or -errno
 */
int uplink_mtu(const struct uplink *u, uint32_t *mtu)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	if (!if_indextoname((unsigned int)u->ifindex, ifr.ifr_name))
		return -errno;
	if (ioctl(u->fd, SIOCGIFMTU, &ifr) < 0)
		return -errno;
	*mtu = (uint32_t)ifr.ifr_mtu;
	return 0;
}

/**
 * uplink_add_mac() - receive frames for @mac: PACKET_MR_UNICAST
 * @u:		uplink
 * @mac:	six bytes, a unicast address
 *
 * The kernel puts @mac in the NIC's unicast filter, or turns the NIC
 * promiscuous if it has none. Counted per socket: add twice, drop twice.
 *
 * Return: 0 or -errno (-EINVAL for a multicast address)
 */
int uplink_add_mac(struct uplink *u, const uint8_t *mac)
{
	if (!mac || (mac[0] & 1))
		return -EINVAL;
	return uplink_membership(u, PACKET_ADD_MEMBERSHIP, PACKET_MR_UNICAST,
				 mac);
}

/**
 * uplink_del_mac() - undo one uplink_add_mac()
 * @u:		uplink
 * @mac:	six bytes
 *
 * Return: 0 or -errno
 */
int uplink_del_mac(struct uplink *u, const uint8_t *mac)
{
	if (!mac || (mac[0] & 1))
		return -EINVAL;
	return uplink_membership(u, PACKET_DROP_MEMBERSHIP, PACKET_MR_UNICAST,
				 mac);
}

/* Receive -------------------------------------------------------------------- */

/**
 * uplink_v2_slot() - address of V2 slot @i
 * @u:		uplink
 * @i:		slot index, < frame_nr
 *
 * Return: the slot's struct tpacket2_hdr
 */
static inline struct tpacket2_hdr *uplink_v2_slot(const struct uplink *u,
						  uint32_t i)
{
	return (struct tpacket2_hdr *)(u->ring +
		(size_t)(i / u->frames_per_block) * u->block_size +
		(size_t)(i % u->frames_per_block) * u->frame_size);
}

/**
 * uplink_v3_block() - address of V3 block @i
 * @u:		uplink
 * @i:		block index
 *
 * Return: the block descriptor
 */
static inline struct tpacket_block_desc *uplink_v3_block(const struct uplink *u,
							 uint32_t i)
{
	return (struct tpacket_block_desc *)(u->ring + (size_t)i * u->block_size);
}

/**
 * uplink_v2_give_back() - hand the held V2 slot back to the kernel
 * @u:		uplink
 */
static void uplink_v2_give_back(struct uplink *u)
{
	struct tpacket2_hdr *h = uplink_v2_slot(u, u->head);

	__atomic_store_n(&h->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
	u->head = u->head + 1 == u->frame_nr ? 0 : u->head + 1;
	u->held = 0;
}

/**
 * uplink_v3_give_back() - hand the current V3 block back to the kernel
 * @u:		uplink
 */
static void uplink_v3_give_back(struct uplink *u)
{
	struct tpacket_block_desc *b = uplink_v3_block(u, u->head);

	__atomic_store_n(&b->hdr.bh1.block_status, TP_STATUS_KERNEL,
			 __ATOMIC_RELEASE);
	u->head = u->head + 1 == u->block_nr ? 0 : u->head + 1;
	u->held = 0;
}

/**
 * uplink_fill() - fill @f from a slot's header fields, or drop the frame
 * @u:		uplink
 * @f:		out
 * @base:	start of the slot (V2) or packet header (V3)
 * @mac_off:	tp_mac
 * @len:	tp_len
 * @snaplen:	tp_snaplen
 * @status:	tp_status
 * @tci:	tp_vlan_tci
 *
 * Return: 0 if @f holds a whole frame, -1 if it was truncated (counted)
 */
static int uplink_fill(struct uplink *u, struct uplink_frame *f, uint8_t *base,
		       uint32_t mac_off, uint32_t len, uint32_t snaplen,
		       uint32_t status, uint16_t tci)
{
	if (unlikely(snaplen < len || len < RING_ETH_HLEN ||
		     mac_off < UPLINK_VNET_HDR_LEN)) {
		u->stats.rx_truncated++;
		return -1;
	}
	f->mac = base + mac_off;
	f->vnet = f->mac - UPLINK_VNET_HDR_LEN;
	f->len = len;
	f->vlan_valid = !!(status & TP_STATUS_VLAN_VALID);
	f->vlan_tci = tci;
	u->stats.rx_frames++;
	u->stats.rx_bytes += len;
	return 0;
}

/**
 * uplink_rx_next() - next received frame
 * @u:		uplink
 * @f:		the frame, out; valid until the next call or uplink_rx_release()
 *
 * Gives back the frame returned by the previous call (V2: its slot; V3:
 * the block, once walked to its end) before it looks for the next one.
 * Truncated frames are skipped and counted.
 *
 * Return: 0 with a frame, -EAGAIN if none is ready
 */
int uplink_rx_next(struct uplink *u, struct uplink_frame *f)
{
	if (u->version == UPLINK_TPACKET_V2) {
		for (;;) {
			struct tpacket2_hdr *h;

			if (u->held)
				uplink_v2_give_back(u);
			h = uplink_v2_slot(u, u->head);
			if (!(__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) &
			      TP_STATUS_USER))
				return -EAGAIN;
			u->held = 1;
			if (!uplink_fill(u, f, (uint8_t *)h, h->tp_mac, h->tp_len,
					 h->tp_snaplen, h->tp_status,
					 h->tp_vlan_tci))
				return 0;
		}
	}
	for (;;) {
		struct tpacket3_hdr *p;

		if (u->held && !u->left)
			uplink_v3_give_back(u);
		if (!u->held) {
			struct tpacket_block_desc *b = uplink_v3_block(u, u->head);

			if (!(__atomic_load_n(&b->hdr.bh1.block_status,
					      __ATOMIC_ACQUIRE) & TP_STATUS_USER))
				return -EAGAIN;
			u->held = 1;
			u->left = b->hdr.bh1.num_pkts;
			u->pkt = (uint8_t *)b + b->hdr.bh1.offset_to_first_pkt;
			u->stats.rx_wakeups++;
			continue;
		}
		p = (struct tpacket3_hdr *)u->pkt;
		u->left--;
		u->pkt += p->tp_next_offset;
		if (!uplink_fill(u, f, (uint8_t *)p, p->tp_mac, p->tp_len,
				 p->tp_snaplen, p->tp_status,
				 p->hv1.tp_vlan_tci))
			return 0;
	}
}

/**
 * uplink_rx_release() - give back what the last uplink_rx_next() returned
 * @u:		uplink
 *
 * V3 gives a block back only when every frame in it was walked.
 */
void uplink_rx_release(struct uplink *u)
{
	if (!u->held)
		return;
	if (u->version == UPLINK_TPACKET_V2)
		uplink_v2_give_back(u);
	else if (!u->left)
		uplink_v3_give_back(u);
}

/* Transmit ------------------------------------------------------------------- */

/**
 * uplink_tx_send() - sendmmsg() the queued batch, account every message
 * @u:		uplink
 *
 * A message the kernel refuses is counted and skipped; the ones after it
 * are sent by the next sendmmsg() call. Never blocks, never retries a
 * refused message: the data plane must not wait on the wire.
 */
static void uplink_tx_send(struct uplink *u)
{
	struct uplink_tx *tx = &u->tx;
	unsigned int i = 0;
	int r;

	while (i < tx->n) {
		u->stats.tx_calls++;
		r = sendmmsg(u->fd, tx->msgs + i, tx->n - i, MSG_DONTWAIT);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EMSGSIZE) {
				tx->res.msgsize++;
				u->stats.tx_msgsize++;
			} else {
				tx->res.errors++;
				u->stats.tx_errors++;
			}
			i++;
			continue;
		}
		for (int k = 0; k < r; k++, i++) {
			tx->res.sent++;
			tx->res.bytes += tx->len[i];
			u->stats.tx_frames++;
			u->stats.tx_bytes += tx->len[i];
		}
	}
	tx->n = 0;
	tx->long_used = 0;
}

/**
 * uplink_tx_queue() - add a frame to the transmit batch (no copy of its body)
 * @u:		uplink
 * @vnet:	validated private copy of the record's 12-byte vnet header;
 *		its first 10 bytes are the struct virtio_net_hdr sent
 * @hdr:	private copy of the frame's first @hdr_len bytes, the
 *		Ethernet header first: these bytes are sent from the copy
 * @hdr_len:	14 to UPLINK_TX_HDR_MAX, at most @frame_len; up to
 *		UPLINK_TX_HDR_LONG for a rare frame (one long head per batch:
 *		a second one sends the batch first)
 * @vid:	0, or a VLAN id (1 to UPLINK_VID_MAX): an 802.1Q tag with it
 *		goes in after the MAC addresses, and the vnet header's
 *		csum_start and hdr_len move by its 4 bytes
 * @frame:	the frame in ring memory; bytes @hdr_len.. are sent from
 *		there and must stay valid until uplink_tx_flush()
 * @frame_len:	frame length, >= 14
 *
 * A full batch is sent at once; the results add up until uplink_tx_flush().
 *
 *   sent:  | vnet (10) | dst src [8100 TCI] type L3... | frame[hdr_len..] |
 *          |  private  |<------ private head -------->|<- ring memory -->|
 *
 * Return: 0, or -EINVAL (bad lengths or VLAN id; with a tag, a vnet
 * offset that would pass 16 bits): nothing was queued
 */
int uplink_tx_queue(struct uplink *u, const struct ring_vnet_hdr *vnet,
		    const uint8_t *hdr, uint32_t hdr_len, uint16_t vid,
		    const uint8_t *frame, uint32_t frame_len)
{
	struct uplink_tx *tx = &u->tx;
	struct ring_vnet_hdr v;
	uint32_t tag = 0;
	uint8_t *head;
	unsigned int i;

	if (unlikely(hdr_len < RING_ETH_HLEN || hdr_len > UPLINK_TX_HDR_LONG ||
		     hdr_len > frame_len || vid > UPLINK_VID_MAX))
		return -EINVAL;
	v = *vnet;
	if (vid) {
		/* offsets in the vnet header count from the frame's start */
		tag = UPLINK_VLAN_HLEN;
		if (unlikely(v.csum_start > 0xffff - tag ||
			     v.hdr_len > 0xffff - tag))
			return -EINVAL;
		if (v.flags & 1)	/* VIRTIO_NET_HDR_F_NEEDS_CSUM */
			v.csum_start = (uint16_t)(v.csum_start + tag);
		if (v.hdr_len)
			v.hdr_len = (uint16_t)(v.hdr_len + tag);
	}
	if (tx->n == UPLINK_TX_BATCH ||
	    (unlikely(hdr_len > UPLINK_TX_HDR_MAX) && tx->long_used))
		uplink_tx_send(u);
	i = tx->n++;
	head = tx->head[i];
	if (unlikely(hdr_len > UPLINK_TX_HDR_MAX)) {
		head = tx->head_long;
		tx->long_used = 1;
	}
	tx->iov[i][1].iov_base = head;
	if (vid) {
		memcpy(head, hdr, 12);
		head[12] = 0x81;
		head[13] = 0x00;
		head[14] = (uint8_t)(vid >> 8);
		head[15] = (uint8_t)vid;
		memcpy(head + 16, hdr + 12, hdr_len - 12);
	} else {
		memcpy(head, hdr, hdr_len);
	}
	/* virtio_net_hdr_v1 minus num_buffers == virtio_net_hdr */
	memcpy(tx->vnet[i], &v, UPLINK_VNET_HDR_LEN);
	tx->iov[i][1].iov_len = hdr_len + tag;
	tx->iov[i][2].iov_base = (void *)(frame + hdr_len);
	tx->iov[i][2].iov_len = frame_len - hdr_len;
	tx->msgs[i].msg_hdr.msg_iovlen = frame_len > hdr_len ? 3 : 2;
	tx->len[i] = frame_len + tag;
	return 0;
}

/**
 * uplink_tx_flush() - send what is queued; report everything sent since
 * the last flush
 * @u:		uplink
 * @res:	out, may be NULL
 *
 * After this no queued iovec points into ring memory any more: the caller
 * may ring_release() the records it queued.
 *
 * Return: 0
 */
int uplink_tx_flush(struct uplink *u, struct uplink_tx_result *res)
{
	if (u->tx.n)
		uplink_tx_send(u);
	if (res)
		*res = u->tx.res;
	memset(&u->tx.res, 0, sizeof(u->tx.res));
	return 0;
}

/**
 * uplink_clear_error() - read and clear the socket's pending error
 * @u:		uplink
 * @err:	the error (0 if none), out
 *
 * The kernel sets one when the link goes down or the device goes away
 * (ENETDOWN); until it is read, poll() reports POLLERR on the socket,
 * which would keep an epoll loop spinning. The ring resumes by itself
 * when the link comes back up.
 *
 * Return: 0 or -errno from getsockopt()
 */
int uplink_clear_error(struct uplink *u, int *err)
{
	socklen_t len = sizeof(*err);

	*err = 0;
	if (getsockopt(u->fd, SOL_SOCKET, SO_ERROR, err, &len) < 0)
		return -errno;
	if (*err)
		u->stats.socket_errors++;
	return 0;
}

/**
 * uplink_get_stats() - counters, with the kernel's RX drops folded in
 * @u:		uplink
 * @st:		out
 *
 * Reads (and so resets) PACKET_STATISTICS: call it from the thread that
 * uses @u, as the other counters are that thread's.
 *
 * Return: 0 or -errno from getsockopt()
 */
int uplink_get_stats(struct uplink *u, struct uplink_stats *st)
{
	struct tpacket_stats_v3 ks;
	socklen_t len = u->version == UPLINK_TPACKET_V3 ?
			sizeof(struct tpacket_stats_v3) :
			sizeof(struct tpacket_stats);

	memset(&ks, 0, sizeof(ks));
	if (getsockopt(u->fd, SOL_PACKET, PACKET_STATISTICS, &ks, &len) < 0)
		return -errno;
	u->stats.rx_kernel_drops += ks.tp_drops;
	*st = u->stats;
	return 0;
}
