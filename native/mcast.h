/* SPDX-License-Identifier: MIT */
/* mcast.h - the switch's multicast group table: IGMP/MLD snooping
 *
 * Per VLAN, the groups (IPv4 and IPv6 addresses) partitions joined, each
 * with its member ports and an expiry per member, and the querier heard
 * per address family (RFC 4541). The switch asks mcast_route() where a
 * group frame goes and gives every IGMP/MLD message to mcast_snoop().
 * Fixed tables allocated by mcast_create(), nothing allocated after;
 * every read of a message is bounded by its length (the fuzzer's rule).
 * docs/architecture.md, "Multicast", describes the rules.
 */
#ifndef VNETSHARE_MCAST_H
#define VNETSHARE_MCAST_H

#include <stdint.h>

/* cdef: begin */
#define MCAST_GROUPS_MAX	4096u	/* groups tracked, all VLANs */
#define MCAST_MEMBERS_MAX	16384u	/* (group, port) memberships */
#define MCAST_VLANS		4096u	/* VLAN ids 0 (untagged) to 4095 */
#define MCAST_GMI_DEFAULT_S	260u	/* RFC 3376 8.4: 2 * 125 s + 10 s */
#define MCAST_PORT_WIRE		0xffffffffu	/* a querier row's port: the wire */

/* mcast_route()'s answer */
enum mcast_route {
	MCAST_FLOOD = 0,	/* every port of the VLAN (as without snooping) */
	MCAST_MEMBERS,		/* the group's members and the router ports */
	MCAST_ROUTERS,		/* the router ports only */
};

/* mcast_snoop()'s answer */
enum mcast_msg {
	MCAST_MSG_NONE = 0,	/* not an IGMP/MLD message (or malformed) */
	MCAST_MSG_REPORT,	/* a report or a leave / done */
	MCAST_MSG_QUERY,	/* a query */
};

/**
 * struct mcast_row - one membership, for the control side
 * @addr:	the group (IPv4 in the first 4 bytes)
 * @v6:		1 for an IPv6 group
 * @vlan:	its VLAN, 0 untagged
 * @port:	the member port's id
 * @expires_ms:	milliseconds until the membership ends
 */
struct mcast_row {
	uint8_t addr[16];
	uint32_t v6;
	uint32_t vlan;
	uint32_t port;
	uint64_t expires_ms;
};

/**
 * struct mcast_querier_row - a querier heard, for the control side
 * @addr:	its address (IPv4 in the first 4 bytes)
 * @v6:		1 for MLD, 0 for IGMP
 * @vlan:	its VLAN
 * @port:	the id of the port it was heard on (MCAST_PORT_WIRE: the wire)
 * @expires_ms:	milliseconds until it counts as gone
 * @gmi_ms:	the membership interval its queries set
 */
struct mcast_querier_row {
	uint8_t addr[16];
	uint32_t v6;
	uint32_t vlan;
	uint32_t port;
	uint32_t pad;
	uint64_t expires_ms;
	uint64_t gmi_ms;
};

struct mcast;

/**
 * struct mcast_member - a port's membership of a group
 * @port:	the port (the switch's struct sw_port, opaque here)
 * @port_id:	its id (for the control side's listing)
 * @expires:	time it ends, ns
 * @next:	the group's next member, index + 1 (0: none)
 */
struct mcast_member {
	void *port;
	uint32_t port_id;
	uint32_t next;
	uint64_t expires;
};

/**
 * struct mcast_group - a group of one VLAN
 * @addr:	its address (IPv4 in the first 4 bytes, the rest 0)
 * @vid:	VLAN
 * @v6:		IPv6
 * @used:	in use
 * @full:	a join found no room: it floods (rule 5 of mcast.c)
 * @first:	its first member, index + 1 (0: none)
 * @hnext:	the next group of its hash chain, index + 1
 */
struct mcast_group {
	uint8_t addr[16];
	uint16_t vid;
	uint8_t v6;
	uint8_t used;
	uint8_t full;
	uint32_t first;
	uint32_t hnext;
};

struct mcast *mcast_create(void);
void mcast_destroy(struct mcast *m);
int mcast_snoop(struct mcast *m, uint16_t vid, void *port, uint32_t port_id,
		int router, unsigned int ethertype, const uint8_t *l3,
		uint32_t len, uint64_t now);
int mcast_route(struct mcast *m, uint16_t vid, unsigned int ethertype,
		const uint8_t *l3, uint32_t len, uint64_t now,
		const struct mcast_group **g);
const struct mcast_member *mcast_member(const struct mcast *m, uint32_t idx);
void *mcast_querier_port(const struct mcast *m, uint16_t vid, int v6,
			 uint64_t now);
int mcast_is_member(const struct mcast *m, const struct mcast_group *g,
		    const void *port, uint64_t now);
void mcast_port_gone(struct mcast *m, void *port);
void mcast_age(struct mcast *m, uint64_t now);
uint32_t mcast_groups(const struct mcast *m);
uint64_t mcast_full(const struct mcast *m);
unsigned int mcast_dump(struct mcast *m, uint64_t now, struct mcast_row *rows,
			unsigned int max);
unsigned int mcast_queriers(const struct mcast *m, uint64_t now,
			    struct mcast_querier_row *rows, unsigned int max);
/* cdef: end */

#endif /* VNETSHARE_MCAST_H */
