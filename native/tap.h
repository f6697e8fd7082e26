/* SPDX-License-Identifier: MIT */
/* tap.h - open a partition's vnet_hdr TAP inside its network namespace
 *
 * The partition's virtual device (the patent's virtual hosted device) is a
 * TAP with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR and a 12-byte vnet header
 * (struct ring_vnet_hdr), so the agent moves the header between TAP and
 * ring untouched. TUNSETIFF makes (or attaches to) the device in the
 * network namespace of the calling *thread*; tap_open() therefore does the
 * work in a short-lived thread that setns()'d into the partition's
 * namespace. The descriptor it returns works from any namespace after that.
 */
#ifndef VNETSHARE_TAP_H
#define VNETSHARE_TAP_H

#include <stdint.h>

/* cdef: begin */
/* TUNSETOFFLOAD bits (linux/if_tun.h; USO is newer than Debian 12's copy) */
#define TAP_F_CSUM	0x01u	/* TUN_F_CSUM: partial checksums accepted */
#define TAP_F_TSO4	0x02u	/* TUN_F_TSO4 */
#define TAP_F_TSO6	0x04u	/* TUN_F_TSO6 */
#define TAP_F_TSO_ECN	0x08u	/* TUN_F_TSO_ECN */
#define TAP_F_USO4	0x20u	/* TUN_F_USO4 (Linux 6.2) */
#define TAP_F_USO6	0x40u	/* TUN_F_USO6 (Linux 6.2) */

/* tap_open() @flags */
#define TAP_PERSIST	0x1u	/* TUNSETPERSIST 1: the device outlives the fd */

#define TAP_VNET_HDR_LEN 12u	/* TUNSETVNETHDRSZ: struct virtio_net_hdr_v1 */

int tap_open(int netns_fd, const char *ifname, const uint8_t *mac,
	     unsigned int offloads, unsigned int flags, int *fd);
int tap_set_offload(int fd, unsigned int offloads);
int tap_set_persist(int fd, int persist);
/* cdef: end */

#endif /* VNETSHARE_TAP_H */
