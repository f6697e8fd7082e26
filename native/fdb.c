// SPDX-License-Identifier: MIT
/* fdb.c - the switch's forwarding database: stations learned on the wire
 *
 * The rules are at the top of fdb.h. A chain, from the slot a MAC hashes
 * to, FDB_PROBES slots at most, wrapping at the end of the table:
 *
 *   slot:  k    k+1   k+2   k+3  ...  k+7
 *         [A/0][B/10][A/10][    ]          A on VLAN 0 and 10, B on 10
 *                            ^ never used: no chain of k goes further
 *
 * A learn walks the chain once: a match is refreshed; else the new station
 * takes the first never-used or dead slot, or, when all FDB_PROBES are
 * live, the least recently seen of them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fdb.h"
#include "util.h"

_Static_assert(sizeof(struct fdb_entry) == 16, "an fdb entry is 16 bytes");

/**
 * fdb_slot() - the slot where a MAC's chain starts
 * @f:		table
 * @mac:	six bytes
 *
 * Return: the slot index
 */
static inline uint32_t fdb_slot(const struct fdb *f, const uint8_t *mac)
{
	uint64_t v = util_mac64(mac) ^ f->seed;

	v *= 0x9e3779b97f4a7c15ull;
	v ^= v >> 29;
	return (uint32_t)(v >> 32) & f->mask;
}

/**
 * fdb_same() - is @e the entry of @mac on @vlan?
 * @e:		entry
 * @mac:	six bytes
 * @vlan:	VLAN id, 0 untagged
 *
 * Return: non-zero if it is
 */
static inline int fdb_same(const struct fdb_entry *e, const uint8_t *mac,
			   uint16_t vlan)
{
	return e->vlan == vlan && !memcmp(e->mac, mac, 6);
}

/**
 * fdb_live() - is an entry alive (seen within the ageing time)?
 * @f:		table
 * @e:		entry
 * @now:	time now, ns
 *
 * An entry seen "after" @now (a caller with an older clock reading) is
 * alive.
 *
 * Return: non-zero if alive
 */
int fdb_live(const struct fdb *f, const struct fdb_entry *e, uint64_t now)
{
	return e->seen_ns &&
	       (now <= e->seen_ns || now - e->seen_ns < f->age_ns);
}

/**
 * fdb_init() - make an empty table
 * @f:		table, out
 * @size:	slots: a power of two, FDB_SIZE_MIN to FDB_SIZE_MAX (0:
 *		FDB_SIZE_DEFAULT)
 * @age_ns:	ageing time, ns (0: FDB_AGE_DEFAULT_S), at most
 *		FDB_AGE_MAX_S seconds
 * @seed:	mixed into the hash (random: the switch takes it from
 *		getrandom())
 *
 * Return: 0, -EINVAL (a size or an age out of range) or -ENOMEM
 */
int fdb_init(struct fdb *f, uint32_t size, uint64_t age_ns, uint64_t seed)
{
	if (!size)
		size = FDB_SIZE_DEFAULT;
	if (!age_ns)
		age_ns = FDB_AGE_DEFAULT_S * 1000000000ull;
	if (size < FDB_SIZE_MIN || size > FDB_SIZE_MAX || (size & (size - 1)) ||
	    age_ns > FDB_AGE_MAX_S * 1000000000ull)
		return -EINVAL;
	memset(f, 0, sizeof(*f));
	f->slots = calloc(size, sizeof(*f->slots));
	if (!f->slots)
		return -ENOMEM;
	f->mask = size - 1;
	f->age_ns = age_ns;
	f->seed = seed;
	return 0;
}

/**
 * fdb_fini() - free a table's slots
 * @f:		table (fdb_init() done, or zeroed)
 */
void fdb_fini(struct fdb *f)
{
	free(f->slots);
	f->slots = NULL;
	f->last = NULL;
}

/**
 * fdb_learn() - a frame came from @mac on @vlan: refresh or make its entry
 * @f:		table
 * @mac:	the frame's source MAC (a unicast one: the caller skips group
 *		sources, which no station sends from)
 * @vlan:	its VLAN, 0 untagged
 * @now:	time now, ns (not 0)
 * @added:	out: 1 if the entry is new (the station was unknown or had
 *		aged out), 0 if it was refreshed
 *
 * The data path's call, once per frame from the wire: a frame from the
 * same station as the one before costs one compare (@f->last); another
 * walks one chain of at most FDB_PROBES slots. Never allocates.
 *
 * Return: the station's entry (valid until a later learn reuses the slot)
 */
struct fdb_entry *fdb_learn(struct fdb *f, const uint8_t *mac, uint16_t vlan,
			    uint64_t now, int *added)
{
	struct fdb_entry *e = f->last, *victim = NULL;
	uint32_t k;

	if (likely(e && fdb_same(e, mac, vlan)))
		goto found;
	k = fdb_slot(f, mac);
	for (unsigned int i = 0; i < FDB_PROBES; i++, k = (k + 1) & f->mask) {
		e = &f->slots[k];
		if (e->seen_ns && fdb_same(e, mac, vlan))
			goto found;
		/* the first free or dead slot; else the least recently seen */
		if (!victim || (fdb_live(f, victim, now) &&
				(!fdb_live(f, e, now) ||
				 e->seen_ns < victim->seen_ns)))
			victim = e;
		if (!e->seen_ns)
			break;		/* the chain ends here (rule 2) */
	}
	if (fdb_live(f, victim, now))
		f->evicted++;
	memcpy(victim->mac, mac, 6);
	victim->vlan = vlan;
	victim->seen_ns = now;
	f->learned++;
	f->last = victim;
	*added = 1;
	return victim;
found:
	*added = !fdb_live(f, e, now);
	f->learned += (uint64_t)*added;
	e->seen_ns = now;
	f->last = e;
	return e;
}

/**
 * fdb_find() - the live entry of a MAC
 * @f:		table
 * @mac:	six bytes
 * @vlan:	the VLAN to look in, or -1 for any (then the most recently
 *		seen of its entries)
 * @now:	time now, ns
 *
 * Return: the entry, or NULL if the MAC is not known there (or aged out)
 */
const struct fdb_entry *fdb_find(const struct fdb *f, const uint8_t *mac,
				 int vlan, uint64_t now)
{
	const struct fdb_entry *best = NULL;
	uint32_t k = fdb_slot(f, mac);

	for (unsigned int i = 0; i < FDB_PROBES; i++, k = (k + 1) & f->mask) {
		const struct fdb_entry *e = &f->slots[k];

		if (!e->seen_ns)
			break;
		if (memcmp(e->mac, mac, 6) || (vlan >= 0 && e->vlan != vlan) ||
		    !fdb_live(f, e, now))
			continue;
		if (!best || e->seen_ns > best->seen_ns)
			best = e;
	}
	return best;
}

/**
 * fdb_describe() - an entry as its readers see it
 * @e:		entry
 * @now:	time now, ns
 * @out:	out
 */
void fdb_describe(const struct fdb_entry *e, uint64_t now,
		  struct fdb_info *out)
{
	memcpy(out->mac, e->mac, 6);
	out->vlan = e->vlan;
	out->age_ns = now > e->seen_ns ? now - e->seen_ns : 0;
}

/**
 * fdb_next() - the next live entry, in slot order
 * @f:		table
 * @now:	time now, ns
 * @k:		in: the slot to start at (0 for the first call); out: the
 *		slot after the entry returned
 *
 * Return: the entry, or NULL when no live one is left
 */
const struct fdb_entry *fdb_next(const struct fdb *f, uint64_t now,
				 uint32_t *k)
{
	for (; *k <= f->mask; (*k)++) {
		const struct fdb_entry *e = &f->slots[*k];

		if (fdb_live(f, e, now)) {
			(*k)++;
			return e;
		}
	}
	return NULL;
}

/**
 * fdb_dump() - describe the live entries
 * @f:		table
 * @now:	time now, ns
 * @out:	an array of @max entries (may be NULL if @max is 0)
 * @max:	entries @out holds
 * @total:	out: live entries there are (may be more than @max)
 *
 * In slot order; walks the whole table (a control command, not the data
 * path).
 *
 * Return: entries written to @out
 */
unsigned int fdb_dump(const struct fdb *f, uint64_t now, struct fdb_info *out,
		      unsigned int max, unsigned int *total)
{
	unsigned int n = 0, all = 0;

	for (uint32_t k = 0; k <= f->mask; k++) {
		const struct fdb_entry *e = &f->slots[k];

		if (!fdb_live(f, e, now))
			continue;
		all++;
		if (n < max)
			fdb_describe(e, now, &out[n++]);
	}
	if (total)
		*total = all;
	return n;
}

/**
 * fdb_get_stats() - the table's counters
 * @f:		table
 * @now:	time now, ns (what is live)
 * @st:		out
 */
void fdb_get_stats(const struct fdb *f, uint64_t now, struct fdb_stats *st)
{
	unsigned int live;

	fdb_dump(f, now, NULL, 0, &live);
	st->entries = live;
	st->learned = f->learned;
	st->evicted = f->evicted;
	st->size = (uint64_t)f->mask + 1;
}
