// SPDX-License-Identifier: MIT
/* tap.c - open a partition's vnet_hdr TAP inside its network namespace
 *
 * Kernel behaviour relied on (probed by tests/netns/probes/test_probe_tap.py,
 * written up in docs/kernel-facts.md):
 *  - TUNSETIFF creates the device in the network namespace of the calling
 *    thread, so a thread that setns()'d into the partition's namespace
 *    makes it there, and the descriptor then works from anywhere;
 *  - after TUNSETVNETHDRSZ(12) every read() starts with a 12-byte
 *    virtio_net_hdr_v1 and, once TUNSETOFFLOAD has TSO, may return one GSO
 *    frame of up to 64 KiB; the kernel writes all 12 header bytes on read
 *    (num_buffers as 0).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/if_tun.h>

#include "tap.h"

#define TAP_OFFLOADS_KNOWN	(TAP_F_CSUM | TAP_F_TSO4 | TAP_F_TSO6 | \
				 TAP_F_TSO_ECN | TAP_F_USO4 | TAP_F_USO6)

/**
 * struct tap_req - what the opening thread needs and gives back
 * @netns_fd:	namespace to enter, -1 to stay in the caller's
 * @ifname:	device name
 * @mac:	MAC address to set, or NULL
 * @offloads:	TAP_F_* bits
 * @flags:	TAP_PERSIST
 * @fd:		the TAP descriptor, out
 * @rc:		0 or -errno, out
 */
struct tap_req {
	int netns_fd;
	const char *ifname;
	const uint8_t *mac;
	unsigned int offloads;
	unsigned int flags;
	int fd;
	int rc;
};

/**
 * tap_set_offload() - tell the kernel which offloads the reader handles
 * @fd:		TAP descriptor (with IFF_VNET_HDR)
 * @offloads:	TAP_F_* bits; 0 turns all off
 *
 * Return: 0, -EINVAL for unknown bits, or -errno from TUNSETOFFLOAD
 */
int tap_set_offload(int fd, unsigned int offloads)
{
	if (offloads & ~TAP_OFFLOADS_KNOWN)
		return -EINVAL;
	if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)offloads) < 0)
		return -errno;
	return 0;
}

/**
 * tap_set_persist() - make the device outlive its descriptors, or not
 * @fd:		TAP descriptor
 * @persist:	1 to keep the device after the last close, 0 to let it go
 *
 * Return: 0 or -errno from TUNSETPERSIST
 */
int tap_set_persist(int fd, int persist)
{
	if (ioctl(fd, TUNSETPERSIST, (unsigned long)!!persist) < 0)
		return -errno;
	return 0;
}

/**
 * tap_set_mac() - set the device's MAC address through its namespace
 * @ifname:	device name, in the calling thread's namespace
 * @mac:	six bytes
 *
 * Return: 0 or -errno
 */
static int tap_set_mac(const char *ifname, const uint8_t *mac)
{
	struct ifreq ifr;
	int s, rc = 0;

	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
	ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
	memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
	if (ioctl(s, SIOCSIFHWADDR, &ifr) < 0)
		rc = -errno;
	close(s);
	return rc;
}

/**
 * tap_open_here() - open the TAP in the calling thread's namespace
 * @q:		request; @q->fd and @q->rc are set
 */
static void tap_open_here(struct tap_req *q)
{
	int hdr = TAP_VNET_HDR_LEN;
	struct ifreq ifr;
	int fd, rc;

	q->fd = -1;
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		q->rc = -errno;
		return;
	}
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, q->ifname, IFNAMSIZ - 1);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		goto fail;
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0)
		goto fail;
	rc = tap_set_offload(fd, q->offloads);
	if (rc < 0)
		goto fail_rc;
	if ((q->flags & TAP_PERSIST) && ioctl(fd, TUNSETPERSIST, 1UL) < 0)
		goto fail;
	if (q->mac) {
		rc = tap_set_mac(q->ifname, q->mac);
		if (rc < 0)
			goto fail_rc;
	}
	q->fd = fd;
	q->rc = 0;
	return;
fail:
	rc = -errno;
fail_rc:
	close(fd);
	q->rc = rc;
}

/**
 * tap_thread() - enter the partition's namespace, then open the TAP there
 * @arg:	struct tap_req
 *
 * setns() changes the namespace of this thread only; the thread ends
 * right after, so no other thread ever runs in the partition's namespace.
 *
 * Return: NULL
 */
static void *tap_thread(void *arg)
{
	struct tap_req *q = arg;

	if (setns(q->netns_fd, CLONE_NEWNET) < 0) {
		q->rc = -errno;
		q->fd = -1;
		return NULL;
	}
	tap_open_here(q);
	return NULL;
}

/**
 * tap_open() - open (or create) a vnet_hdr TAP in a network namespace
 * @netns_fd:	descriptor of the namespace (/run/netns/NAME, /proc/PID/ns/net),
 *		or -1 for the caller's
 * @ifname:	device name, 1 to IFNAMSIZ - 1 bytes; an existing TAP of
 *		that name (a persistent one) is attached to
 * @mac:	MAC address to give the device, or NULL to keep its own
 * @offloads:	TAP_F_* bits for TUNSETOFFLOAD
 * @flags:	TAP_PERSIST to set TUNSETPERSIST
 * @fd:		the non-blocking, close-on-exec TAP descriptor, out
 *
 * The device has IFF_TAP | IFF_NO_PI | IFF_VNET_HDR and a 12-byte vnet
 * header. It is left down: addresses, MTU and link state are the caller's.
 *
 * Return: 0 or -errno (-EINVAL for a bad name or flags; -EBUSY / -EINVAL
 * from TUNSETIFF if a device of that name exists with other flags)
 */
int tap_open(int netns_fd, const char *ifname, const uint8_t *mac,
	     unsigned int offloads, unsigned int flags, int *fd)
{
	struct tap_req q = {
		.netns_fd = netns_fd, .ifname = ifname, .mac = mac,
		.offloads = offloads, .flags = flags, .fd = -1, .rc = -EINVAL,
	};
	pthread_t t;
	size_t len;
	int rc;

	if (!ifname || !fd || (flags & ~TAP_PERSIST) ||
	    (offloads & ~TAP_OFFLOADS_KNOWN))
		return -EINVAL;
	len = strlen(ifname);
	if (len == 0 || len >= IFNAMSIZ)
		return -EINVAL;
	if (netns_fd < 0) {
		tap_open_here(&q);
	} else {
		rc = pthread_create(&t, NULL, tap_thread, &q);
		if (rc)
			return -rc;
		pthread_join(t, NULL);
	}
	if (q.rc < 0)
		return q.rc;
	*fd = q.fd;
	return 0;
}
