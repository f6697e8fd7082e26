/* SPDX-License-Identifier: MIT */
/* fdb.h - the switch's forwarding database: stations learned on the wire
 *
 * What a learning bridge keeps (the Linux bridge's fdb, Open vSwitch's
 * lib/mac-learning.c): the source MAC of each frame from the uplink, per
 * VLAN, with the time it was last seen. The switch asks it who owns a MAC
 * before it gives a partition that MAC (sw_port_add()), and notices a
 * partition's MAC showing up as a source on the wire (a conflict).
 *
 * Rules:
 * 1. Fixed size, allocated once by fdb_init(): nothing allocates after it,
 *    so the data-plane thread learns without malloc().
 * 2. Open addressing keyed by the MAC alone (all VLANs of one MAC share a
 *    chain, so "this MAC on any VLAN" is one chain walk); a chain is at most
 *    FDB_PROBES slots. A slot once used is never emptied: an entry ages
 *    (older than @age_ns: dead, as if absent) and a later learn reuses it,
 *    so a walk may stop at the first never-used slot.
 * 3. Learning a station that finds no match and no dead or free slot in
 *    its FDB_PROBES slots replaces the least recently seen live one there
 *    (counted: @evicted): a flood of forged sources costs old, quiet
 *    stations, not the busy ones (a gateway is seen every second).
 * 4. One owner: the data-plane thread; the control thread reads it only
 *    through the switch's command queue.
 * 5. Times are the caller's util_now_ns(); 0 is never a time (a slot whose
 *    @seen_ns is 0 was never used).
 */
#ifndef VNETSHARE_FDB_H
#define VNETSHARE_FDB_H

#include <stdint.h>

/* cdef: begin */
#define FDB_SIZE_DEFAULT	4096u	/* stations, 16 bytes each */
#define FDB_SIZE_MIN		16u
#define FDB_SIZE_MAX		(1u << 20)
#define FDB_AGE_DEFAULT_S	300u	/* 802.1Q's default ageing time */
#define FDB_AGE_MAX_S		1000000u	/* 802.1Q's upper bound */
#define FDB_PROBES		8u	/* slots a chain may span */

/**
 * struct fdb_entry - one station seen on the wire
 * @mac:	its address
 * @vlan:	the VLAN it was seen in: 0 untagged, else the VLAN id
 * @seen_ns:	when it was last seen (util_now_ns()); 0: the slot was
 *		never used
 */
struct fdb_entry {
	uint8_t mac[6];
	uint16_t vlan;
	uint64_t seen_ns;
};

/**
 * struct fdb_info - an entry as the table's readers get it
 * @mac:	the station's address
 * @vlan:	the VLAN it was seen in: 0 untagged, else the VLAN id
 * @age_ns:	how long ago it was last seen
 */
struct fdb_info {
	uint8_t mac[6];
	uint16_t vlan;
	uint64_t age_ns;
};

/**
 * struct fdb_stats - counters of the table
 * @entries:	live entries now (a gauge; counting them walks the table)
 * @learned:	entries made (a station new, or back after it aged out)
 * @evicted:	live entries replaced for want of room (rule 3)
 * @size:	slots: the most stations it holds
 */
struct fdb_stats {
	uint64_t entries;
	uint64_t learned;
	uint64_t evicted;
	uint64_t size;
};

/**
 * struct fdb - the table
 * @slots:	@mask + 1 entries
 * @mask:	slots - 1 (a power of two)
 * @age_ns:	an entry not seen for this long is dead
 * @seed:	mixed into the hash, so that chains are not chosen from outside
 * @last:	the entry the last fdb_learn() returned: a burst from one
 *		station costs one compare a frame
 * @learned:	see struct fdb_stats
 * @evicted:	see struct fdb_stats
 */
struct fdb {
	struct fdb_entry *slots;
	uint32_t mask;
	uint64_t age_ns;
	uint64_t seed;
	struct fdb_entry *last;
	uint64_t learned;
	uint64_t evicted;
};

int fdb_init(struct fdb *f, uint32_t size, uint64_t age_ns, uint64_t seed);
void fdb_fini(struct fdb *f);
struct fdb_entry *fdb_learn(struct fdb *f, const uint8_t *mac, uint16_t vlan,
			    uint64_t now, int *added);
const struct fdb_entry *fdb_find(const struct fdb *f, const uint8_t *mac,
				 int vlan, uint64_t now);
int fdb_live(const struct fdb *f, const struct fdb_entry *e, uint64_t now);
void fdb_describe(const struct fdb_entry *e, uint64_t now,
		  struct fdb_info *out);
const struct fdb_entry *fdb_next(const struct fdb *f, uint64_t now,
				 uint32_t *k);
unsigned int fdb_dump(const struct fdb *f, uint64_t now, struct fdb_info *out,
		      unsigned int max, unsigned int *total);
void fdb_get_stats(const struct fdb *f, uint64_t now, struct fdb_stats *st);
/* cdef: end */

#endif /* VNETSHARE_FDB_H */
