// SPDX-License-Identifier: MIT
/* mcast.c - the switch's multicast group table: IGMP/MLD snooping
 *
 * DOC: Rules
 *
 *  1. Snooped: IGMPv1/v2/v3 (IPv4 protocol 2) and MLDv1/v2 (ICMPv6 types
 *     130, 131, 132, 143 after at most MCAST_EXT_MAX hop-by-hop or
 *     destination options headers). Every read is bounded by the length
 *     the caller gives, cut to the IP header's own length; a message that
 *     does not fit is MCAST_MSG_NONE and changes nothing.
 *  2. Joins: a v1/v2 report, a v3 record MODE_IS_EXCLUDE / CHANGE_TO_EXCLUDE
 *     (any sources), MODE_IS_INCLUDE / ALLOW_NEW with sources. Leaves: a v2
 *     leave / MLDv1 done, a v3 record MODE_IS_INCLUDE / CHANGE_TO_INCLUDE
 *     with no source. BLOCK_OLD changes nothing. A port is one host (a
 *     partition's stack reports for all its sockets), so a leave ends
 *     that port's membership at once. Reports from the wire (@port NULL)
 *     are counted by the caller, not recorded: the wire gets a partition's
 *     group frames anyway.
 *  3. A query (IGMP 0x11, MLD 130) from the wire or from a router port
 *     (@router) makes its sender the VLAN's querier for that family until
 *     the membership interval passes without another; the interval is
 *     robustness * query interval + max response time (RFC 3376 8.4,
 *     RFC 3810 9.2), from the query's QRV/QQIC/MRC (v3, MLDv2), else the
 *     defaults (MCAST_GMI_DEFAULT_S). A query also ages the table.
 *  4. Routing (mcast_route()): link-local groups (224.0.0.0/24, IPv6 scope
 *     0-2), non-IP frames and anything that does not parse flood; a
 *     group with a live member goes to its members (and the router ports,
 *     the caller's part); no member: flood while no querier of its family
 *     is heard on the VLAN (the safe default), else the router ports only.
 *  5. Full tables: a join that finds no room is counted (mcast_full()),
 *     and nobody loses a group for it: a group that exists and could not
 *     take a member floods until it is freed; a group that could not be
 *     made leaves every unknown group flooding until the next ageing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mcast.h"

#define MCAST_BUCKETS	4096u	/* hash chains (a power of two) */
#define MCAST_EXT_MAX	4u	/* IPv6 extension headers walked */
#define MCAST_NS	1000000000ull

/**
 * struct mcast_querier - the querier of one VLAN and family
 * @until:	time it counts as gone, ns (0: none heard)
 * @gmi_ns:	the membership interval its queries set (0: the default)
 * @port:	the port it was heard on (NULL: the wire)
 * @port_id:	its id
 * @addr:	its address
 */
struct mcast_querier {
	uint64_t until;
	uint64_t gmi_ns;
	void *port;
	uint32_t port_id;
	uint8_t addr[16];
};

/**
 * struct mcast - the table
 * @groups:	MCAST_GROUPS_MAX groups
 * @members:	MCAST_MEMBERS_MAX memberships
 * @buckets:	hash chains of groups, index + 1
 * @free_g:	free groups, a chain through @hnext, index + 1
 * @free_m:	free memberships, a chain through @next, index + 1
 * @ngroups:	groups in use
 * @full:	joins refused for want of room
 * @overflow:	a join was refused since the last age: unknown groups flood
 * @q:		the queriers, [vlan][v6]
 */
struct mcast {
	struct mcast_group groups[MCAST_GROUPS_MAX];
	struct mcast_member members[MCAST_MEMBERS_MAX];
	uint32_t buckets[MCAST_BUCKETS];
	uint32_t free_g;
	uint32_t free_m;
	uint32_t ngroups;
	uint64_t full;
	int overflow;
	struct mcast_querier q[MCAST_VLANS][2];
};

static inline unsigned int mc_be16(const uint8_t *p)
{
	return (unsigned int)p[0] << 8 | p[1];
}

/**
 * mcast_create() - an empty table
 *
 * Return: it, or NULL (ENOMEM)
 */
struct mcast *mcast_create(void)
{
	struct mcast *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	for (uint32_t i = 0; i < MCAST_GROUPS_MAX; i++)
		m->groups[i].hnext = i + 2 <= MCAST_GROUPS_MAX ? i + 2 : 0;
	m->free_g = 1;
	for (uint32_t i = 0; i < MCAST_MEMBERS_MAX; i++)
		m->members[i].next = i + 2 <= MCAST_MEMBERS_MAX ? i + 2 : 0;
	m->free_m = 1;
	return m;
}

/**
 * mcast_destroy() - free a table
 * @m:		it, or NULL
 */
void mcast_destroy(struct mcast *m)
{
	free(m);
}

static uint32_t mc_hash(uint16_t vid, const uint8_t *addr)
{
	uint64_t h = vid * 0x9e3779b97f4a7c15ull;

	for (unsigned int i = 0; i < 16; i += 4)
		h = (h ^ ((uint32_t)addr[i] << 24 | (uint32_t)addr[i + 1] << 16 |
			  (uint32_t)addr[i + 2] << 8 | addr[i + 3])) *
		    0x9e3779b97f4a7c15ull;
	return (uint32_t)(h >> 40) & (MCAST_BUCKETS - 1);
}

/* the group @addr of @vid, or NULL; @prev its chain link, out (may be NULL) */
static struct mcast_group *mc_find(struct mcast *m, uint16_t vid,
				   const uint8_t *addr, uint32_t **prev)
{
	uint32_t *link = &m->buckets[mc_hash(vid, addr)];

	while (*link) {
		struct mcast_group *g = &m->groups[*link - 1];

		if (g->vid == vid && !memcmp(g->addr, addr, 16)) {
			if (prev)
				*prev = link;
			return g;
		}
		link = &g->hnext;
	}
	return NULL;
}

/* free group @g, linked from @link */
static void mc_group_free(struct mcast *m, struct mcast_group *g,
			  uint32_t *link)
{
	uint32_t idx = (uint32_t)(g - m->groups) + 1;

	*link = g->hnext;
	while (g->first) {	/* its members back to the free chain */
		struct mcast_member *e = &m->members[g->first - 1];
		uint32_t next = e->next;

		e->next = m->free_m;
		e->port = NULL;
		m->free_m = g->first;
		g->first = next;
	}
	memset(g, 0, sizeof(*g));
	g->hnext = m->free_g;
	m->free_g = idx;
	m->ngroups--;
}

/* the membership interval of @vid and family @v6, ns */
static uint64_t mc_gmi(const struct mcast *m, uint16_t vid, int v6)
{
	uint64_t g = m->q[vid][v6].gmi_ns;

	return g ? g : MCAST_GMI_DEFAULT_S * MCAST_NS;
}

/* @port joins @addr on @vid (rule 2) */
static void mc_join(struct mcast *m, uint16_t vid, int v6, const uint8_t *addr,
		    void *port, uint32_t port_id, uint64_t now)
{
	struct mcast_group *g = mc_find(m, vid, addr, NULL);
	uint64_t until = now + mc_gmi(m, vid, v6);
	struct mcast_member *e;
	uint32_t idx;

	if (!g) {
		if (!m->free_g || !m->free_m) {
			m->full++;
			m->overflow = 1;
			return;
		}
		idx = m->free_g;
		g = &m->groups[idx - 1];
		m->free_g = g->hnext;
		memcpy(g->addr, addr, 16);
		g->vid = vid;
		g->v6 = (uint8_t)v6;
		g->used = 1;
		g->first = 0;
		g->hnext = m->buckets[mc_hash(vid, addr)];
		m->buckets[mc_hash(vid, addr)] = idx;
		m->ngroups++;
	}
	for (idx = g->first; idx; idx = e->next) {
		e = &m->members[idx - 1];
		if (e->port == port) {
			e->expires = until;
			return;
		}
	}
	if (!m->free_m) {
		m->full++;
		g->full = 1;
		return;
	}
	idx = m->free_m;
	e = &m->members[idx - 1];
	m->free_m = e->next;
	e->port = port;
	e->port_id = port_id;
	e->expires = until;
	e->next = g->first;
	g->first = idx;
}

/* @port leaves @addr on @vid (rule 2) */
static void mc_leave(struct mcast *m, uint16_t vid, const uint8_t *addr,
		     void *port)
{
	uint32_t *glink, *link;
	struct mcast_group *g = mc_find(m, vid, addr, &glink);

	if (!g)
		return;
	for (link = &g->first; *link; link = &m->members[*link - 1].next) {
		struct mcast_member *e = &m->members[*link - 1];
		uint32_t idx = *link;

		if (e->port != port)
			continue;
		*link = e->next;
		e->port = NULL;
		e->next = m->free_m;
		m->free_m = idx;
		break;
	}
	if (!g->first)
		mc_group_free(m, g, glink);
}

/* is @a (16 bytes, IPv4 in the first 4) a group snooping may scope? */
static int mc_scoped(const uint8_t *a, int v6)
{
	if (v6)	/* ff0X::, X the scope: 0-2 never scoped */
		return a[0] == 0xff && (a[1] & 0x0f) > 2;
	return (a[0] & 0xf0) == 0xe0 && !(a[0] == 224 && !a[1] && !a[2]);
}

/* a membership change of @addr by @port (joins and leaves, rule 2) */
static void mc_record(struct mcast *m, uint16_t vid, int v6,
		      const uint8_t *addr, int join, void *port,
		      uint32_t port_id, uint64_t now)
{
	if (!port || !mc_scoped(addr, v6))
		return;
	if (join)
		mc_join(m, vid, v6, addr, port, port_id, now);
	else
		mc_leave(m, vid, addr, port);
}

/* a v3 / MLDv2 record type and its source count: join (1), leave (0),
   nothing (-1) */
static int mc_rec_join(unsigned int type, unsigned int nsrc)
{
	switch (type) {
	case 2:	/* MODE_IS_EXCLUDE */
	case 4:	/* CHANGE_TO_EXCLUDE */
		return 1;
	case 1:	/* MODE_IS_INCLUDE */
	case 3:	/* CHANGE_TO_INCLUDE */
		return nsrc ? 1 : 0;
	case 5:	/* ALLOW_NEW_SOURCES */
		return nsrc ? 1 : -1;
	default:	/* BLOCK_OLD_SOURCES, unknown */
		return -1;
	}
}

/* a v3 code (MRC, QQIC; 8 bits with @bits 8, MLD's MRC 16): its value */
static uint32_t mc_code(uint32_t c, unsigned int bits)
{
	uint32_t top = 1u << (bits - 1);

	if (c < top)
		return c;
	if (bits == 8)
		return ((c & 0x0f) | 0x10) << (((c >> 4) & 7) + 3);
	return ((c & 0x0fff) | 0x1000) << (((c >> 12) & 7) + 3);
}

/* a query heard (rule 3); @qrv 0, @qqi_s 0: the defaults */
static void mc_query(struct mcast *m, uint16_t vid, int v6, const uint8_t *src,
		     void *port, uint32_t port_id, uint64_t mrt_ms,
		     unsigned int qrv, uint32_t qqi_s, uint64_t now)
{
	struct mcast_querier *q = &m->q[vid][v6];
	uint64_t gmi;

	if (!qrv)
		qrv = 2;
	if (!qqi_s)
		qqi_s = 125;
	gmi = (uint64_t)qrv * qqi_s * MCAST_NS + mrt_ms * 1000000ull;
	q->gmi_ns = gmi;
	q->until = now + gmi;
	q->port = port;
	q->port_id = port_id;
	memset(q->addr, 0, 16);
	memcpy(q->addr, src, v6 ? 16 : 4);
	mcast_age(m, now);
}

/**
 * mc_v3_records() - the group records of an IGMPv3 or MLDv2 report
 * @m:		table
 * @vid:	VLAN
 * @v6:		MLDv2 (16-byte addresses), else IGMPv3 (4)
 * @p:		the report (its type byte first), @len bytes
 * @len:	its length
 * @port:	the port it came from (NULL: the wire)
 * @port_id:	its id
 * @now:	ns
 *
 * Both lay a record out alike: type, aux data length (in 4-byte words),
 * number of sources, the group, the sources, the aux data; the count is
 * at byte 6 and the first record at byte 8. A record that does not fit in
 * @len ends the walk (rule 1).
 */
static void mc_v3_records(struct mcast *m, uint16_t vid, int v6,
			  const uint8_t *p, uint32_t len, void *port,
			  uint32_t port_id, uint64_t now)
{
	uint32_t alen = v6 ? 16u : 4u, n = mc_be16(p + 6);
	uint64_t off = 8;

	for (uint32_t i = 0; i < n; i++) {
		uint8_t a[16] = { 0 };	/* an IPv4 group as mc_record() takes it */
		unsigned int nsrc;
		int j;

		if (off + 4 + alen > len)
			break;
		nsrc = mc_be16(p + off + 2);
		memcpy(a, p + off + 4, alen);
		j = mc_rec_join(p[off], nsrc);
		if (j >= 0)
			mc_record(m, vid, v6, a, j, port, port_id, now);
		off += 4 + alen + (uint64_t)nsrc * alen + p[off + 1] * 4u;
	}
}

/* IGMP at @p, @len bytes (rule 1) */
static int mc_igmp(struct mcast *m, uint16_t vid, void *port, uint32_t port_id,
		   int router, const uint8_t *src, const uint8_t *p,
		   uint32_t len, uint64_t now)
{
	uint8_t a[16] = { 0 };

	if (len < 8)
		return MCAST_MSG_NONE;
	switch (p[0]) {
	case 0x11:	/* query: v1 (MRT 0), v2 (8 bytes), v3 (12+) */
		if (!port || router) {
			if (len >= 12)
				mc_query(m, vid, 0, src, port, port_id,
					 mc_code(p[1], 8) * 100ull, p[8] & 7,
					 mc_code(p[9], 8), now);
			else
				mc_query(m, vid, 0, src, port, port_id,
					 p[1] ? p[1] * 100ull : 10000ull, 0, 0,
					 now);
		}
		return MCAST_MSG_QUERY;
	case 0x12:	/* v1 report */
	case 0x16:	/* v2 report */
	case 0x17:	/* v2 leave */
		memcpy(a, p + 4, 4);
		mc_record(m, vid, 0, a, p[0] != 0x17, port, port_id, now);
		return MCAST_MSG_REPORT;
	case 0x22:	/* v3 report */
		mc_v3_records(m, vid, 0, p, len, port, port_id, now);
		return MCAST_MSG_REPORT;
	}
	return MCAST_MSG_NONE;
}

/* MLD at @p, @len bytes (rule 1) */
static int mc_mld(struct mcast *m, uint16_t vid, void *port, uint32_t port_id,
		  int router, const uint8_t *src, const uint8_t *p,
		  uint32_t len, uint64_t now)
{

	if (len < 8)
		return MCAST_MSG_NONE;
	switch (p[0]) {
	case 130:	/* query: MLDv1 24 bytes, MLDv2 28+ */
		if (len < 24)
			return MCAST_MSG_NONE;
		if (!port || router) {
			if (len >= 28)
				mc_query(m, vid, 1, src, port, port_id,
					 mc_code(mc_be16(p + 4), 16),
					 p[24] & 7, mc_code(p[25], 8), now);
			else
				mc_query(m, vid, 1, src, port, port_id,
					 mc_be16(p + 4), 0, 0, now);
		}
		return MCAST_MSG_QUERY;
	case 131:	/* MLDv1 report */
	case 132:	/* MLDv1 done */
		if (len < 24)
			return MCAST_MSG_NONE;
		mc_record(m, vid, 1, p + 8, p[0] == 131, port, port_id, now);
		return MCAST_MSG_REPORT;
	case 143:	/* MLDv2 report */
		mc_v3_records(m, vid, 1, p, len, port, port_id, now);
		return MCAST_MSG_REPORT;
	}
	return MCAST_MSG_NONE;
}

/**
 * mc_l4() - an IP packet's upper layer
 * @ethertype:	0x0800 or 0x86dd
 * @l3:		the IP header
 * @len:	bytes readable at @l3
 * @proto:	the upper-layer protocol, out
 * @off:	where it starts, out
 * @end:	where the packet ends (its own length, at most @len), out
 *
 * Return: 4 or 6, or 0 (not IP, or malformed)
 */
static int mc_l4(unsigned int ethertype, const uint8_t *l3, uint32_t len,
		 unsigned int *proto, uint32_t *off, uint32_t *end)
{
	uint32_t o, tot;
	unsigned int nh;

	if (ethertype == 0x0800) {
		if (len < 20 || l3[0] >> 4 != 4)
			return 0;
		o = (l3[0] & 0x0f) * 4u;
		tot = mc_be16(l3 + 2);
		if (o < 20 || tot < o)
			return 0;
		*end = tot < len ? tot : len;
		if (o > *end)
			return 0;
		*proto = l3[9];
		*off = o;
		return 4;
	}
	if (ethertype != 0x86dd || len < 40 || l3[0] >> 4 != 6)
		return 0;
	tot = 40 + mc_be16(l3 + 4);
	*end = tot < len ? tot : len;
	nh = l3[6];
	o = 40;
	for (unsigned int n = 0; nh == 0 || nh == 60; n++) {
		if (n == MCAST_EXT_MAX || (uint64_t)o + 2 > *end)
			return 0;
		nh = l3[o];
		o += (l3[o + 1] + 1u) * 8u;
	}
	if (o > *end)
		return 0;
	*proto = nh;
	*off = o;
	return 6;
}

/**
 * mcast_snoop() - learn from an IGMP or MLD message
 * @m:		table
 * @vid:	its VLAN
 * @port:	the port it came from (NULL: the wire)
 * @port_id:	its id
 * @router:	the port may be a querier (a trusted router)
 * @ethertype:	the frame's L3 type
 * @l3:		its IP header (private memory or the wire's RX ring)
 * @len:	bytes readable at @l3
 * @now:	time now, ns
 *
 * Rules 1-3 above.
 *
 * Return: enum mcast_msg
 */
int mcast_snoop(struct mcast *m, uint16_t vid, void *port, uint32_t port_id,
		int router, unsigned int ethertype, const uint8_t *l3,
		uint32_t len, uint64_t now)
{
	unsigned int proto;
	uint32_t off, end;
	int fam = mc_l4(ethertype, l3, len, &proto, &off, &end);

	vid &= MCAST_VLANS - 1;
	if (fam == 4 && proto == 2)
		return mc_igmp(m, vid, port, port_id, router, l3 + 12,
			       l3 + off, end - off, now);
	if (fam == 6 && proto == 58)
		return mc_mld(m, vid, port, port_id, router, l3 + 8,
			      l3 + off, end - off, now);
	return MCAST_MSG_NONE;
}

/* does @g have a member whose membership has not ended? */
static int mc_live(const struct mcast *m, const struct mcast_group *g,
		   uint64_t now)
{
	for (uint32_t i = g->first; i; i = m->members[i - 1].next)
		if (m->members[i - 1].expires > now)
			return 1;
	return 0;
}

/**
 * mcast_route() - where a group frame goes (rule 4)
 * @m:		table
 * @vid:	its VLAN
 * @ethertype:	its L3 type
 * @l3:		its IP header
 * @len:	bytes readable at @l3
 * @now:	time now, ns
 * @g:		the group, out, with MCAST_MEMBERS
 *
 * Return: enum mcast_route
 */
int mcast_route(struct mcast *m, uint16_t vid, unsigned int ethertype,
		const uint8_t *l3, uint32_t len, uint64_t now,
		const struct mcast_group **g)
{
	uint8_t a[16] = { 0 };
	struct mcast_group *e;
	int v6;

	vid &= MCAST_VLANS - 1;
	if (ethertype == 0x0800 && len >= 20 && l3[0] >> 4 == 4) {
		memcpy(a, l3 + 16, 4);
		v6 = 0;
	} else if (ethertype == 0x86dd && len >= 40 && l3[0] >> 4 == 6) {
		memcpy(a, l3 + 24, 16);
		v6 = 1;
	} else {
		return MCAST_FLOOD;
	}
	if (!mc_scoped(a, v6))
		return MCAST_FLOOD;
	e = mc_find(m, vid, a, NULL);
	if (e && e->full)
		return MCAST_FLOOD;
	if (e && mc_live(m, e, now)) {
		*g = e;
		return MCAST_MEMBERS;
	}
	/* no member: the safe default while no querier, or while the table
	   refused a join (that group may be the one) */
	if (m->overflow || m->q[vid][v6].until <= now)
		return MCAST_FLOOD;
	return MCAST_ROUTERS;
}

/**
 * mcast_member() - a membership by its index + 1 (a group's @first, a
 * member's @next)
 * @m:		table
 * @idx:	index + 1
 *
 * Return: it
 */
const struct mcast_member *mcast_member(const struct mcast *m, uint32_t idx)
{
	return &m->members[idx - 1];
}

/**
 * mcast_querier_port() - the port a live querier was heard on
 * @m:		table
 * @vid:	VLAN
 * @v6:		family
 * @now:	time now, ns
 *
 * Return: it, or NULL (the wire, or none)
 */
void *mcast_querier_port(const struct mcast *m, uint16_t vid, int v6,
			 uint64_t now)
{
	const struct mcast_querier *q = &m->q[vid & (MCAST_VLANS - 1)][!!v6];

	return q->until > now ? q->port : NULL;
}

/**
 * mcast_is_member() - is @port a live member of @g?
 * @m:		table
 * @g:		group
 * @port:	port
 * @now:	time now, ns
 *
 * Return: 1 or 0
 */
int mcast_is_member(const struct mcast *m, const struct mcast_group *g,
		    const void *port, uint64_t now)
{
	for (uint32_t i = g->first; i; i = m->members[i - 1].next)
		if (m->members[i - 1].port == port &&
		    m->members[i - 1].expires > now)
			return 1;
	return 0;
}

/* drop the memberships of @port (non-NULL), or those ended by @now; free
   the groups left empty */
static void mc_sweep(struct mcast *m, const void *port, uint64_t now)
{
	for (uint32_t b = 0; b < MCAST_BUCKETS; b++) {
		uint32_t *glink = &m->buckets[b];

		while (*glink) {
			struct mcast_group *g = &m->groups[*glink - 1];
			uint32_t *link = &g->first;

			while (*link) {
				struct mcast_member *e = &m->members[*link - 1];
				uint32_t idx = *link;

				if (port ? e->port != port : e->expires > now) {
					link = &e->next;
					continue;
				}
				*link = e->next;
				e->port = NULL;
				e->next = m->free_m;
				m->free_m = idx;
			}
			if (!g->first)
				mc_group_free(m, g, glink);	/* *glink moved on */
			else
				glink = &g->hnext;
		}
	}
}

/**
 * mcast_port_gone() - forget a port (deleted): its memberships, its querier
 * @m:		table
 * @port:	port
 */
void mcast_port_gone(struct mcast *m, void *port)
{
	for (uint32_t v = 0; v < MCAST_VLANS; v++)
		for (unsigned int f = 0; f < 2; f++)
			if (m->q[v][f].port == port)
				m->q[v][f].until = 0;
	mc_sweep(m, port, 0);
}

/**
 * mcast_age() - end the memberships that expired; free empty groups
 * @m:		table
 * @now:	time now, ns
 *
 * Called on every query heard and before a dump: memberships that ended
 * are never delivered to anyway (mcast_route() reads their expiry). The
 * table's overflow mark (rule 5) ends here too.
 */
void mcast_age(struct mcast *m, uint64_t now)
{
	m->overflow = 0;
	mc_sweep(m, NULL, now);
}

/**
 * mcast_groups() - groups in the table now (a gauge)
 * @m:		table
 *
 * Return: their number
 */
uint32_t mcast_groups(const struct mcast *m)
{
	return m->ngroups;
}

/**
 * mcast_full() - joins refused for want of room
 * @m:		table
 *
 * Return: their number
 */
uint64_t mcast_full(const struct mcast *m)
{
	return m->full;
}

/**
 * mcast_dump() - the live memberships, aged first
 * @m:		table
 * @now:	time now, ns
 * @rows:	@max rows, out
 * @max:	their number
 *
 * Return: rows written (at most @max)
 */
unsigned int mcast_dump(struct mcast *m, uint64_t now, struct mcast_row *rows,
			unsigned int max)
{
	unsigned int n = 0;
	int overflow = m->overflow;

	mcast_age(m, now);
	m->overflow = overflow;
	for (uint32_t i = 0; i < MCAST_GROUPS_MAX && n < max; i++) {
		const struct mcast_group *g = &m->groups[i];

		if (!g->used)
			continue;
		for (uint32_t k = g->first; k && n < max;
		     k = m->members[k - 1].next) {
			const struct mcast_member *e = &m->members[k - 1];
			struct mcast_row *r = &rows[n++];

			memcpy(r->addr, g->addr, 16);
			r->v6 = g->v6;
			r->vlan = g->vid;
			r->port = e->port_id;
			r->expires_ms = (e->expires - now) / 1000000u;
		}
	}
	return n;
}

/**
 * mcast_queriers() - the live queriers
 * @m:		table
 * @now:	time now, ns
 * @rows:	@max rows, out
 * @max:	their number
 *
 * Return: rows written (at most @max)
 */
unsigned int mcast_queriers(const struct mcast *m, uint64_t now,
			    struct mcast_querier_row *rows, unsigned int max)
{
	unsigned int n = 0;

	for (uint32_t v = 0; v < MCAST_VLANS && n < max; v++)
		for (unsigned int f = 0; f < 2 && n < max; f++) {
			const struct mcast_querier *q = &m->q[v][f];
			struct mcast_querier_row *r;

			if (q->until <= now)
				continue;
			r = &rows[n++];
			memcpy(r->addr, q->addr, 16);
			r->v6 = f;
			r->vlan = v;
			r->port = q->port ? q->port_id : MCAST_PORT_WIRE;
			r->pad = 0;
			r->expires_ms = (q->until - now) / 1000000u;
			r->gmi_ms = q->gmi_ns / 1000000u;
		}
	return n;
}
