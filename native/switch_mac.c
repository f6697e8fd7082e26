// SPDX-License-Identifier: MIT
/* switch_mac.c - the switch's port table by MAC: enter, take out
 *
 * Open addressing with linear probing over @sw->macs (switch_int.h); the
 * lookup the frames use, sw_lookup(), is inline in switch_int.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "coalesce.h"
#include "switch_int.h"

/**
 * sw_mac_add() - enter a port into the MAC table (its MAC is not there)
 * @sw:		switch
 * @p:		port
 */
void sw_mac_add(struct sw *sw, struct sw_port *p)
{
	uint32_t i = sw_mac_slot(sw, p->guard.mac);

	while (sw->macs[i])
		i = (i + 1) & sw->mac_mask;
	sw->macs[i] = p;
}

/**
 * sw_mac_del() - take a port out of the MAC table
 * @sw:		switch
 * @p:		port, in the table
 *
 * Linear probing without tombstones: the entries after the hole that
 * would no longer be found are moved back into it (Knuth's algorithm R).
 */
void sw_mac_del(struct sw *sw, struct sw_port *p)
{
	uint32_t i = sw_mac_slot(sw, p->guard.mac), j, k;

	while (sw->macs[i] != p)
		i = (i + 1) & sw->mac_mask;
	for (j = i;;) {
		sw->macs[i] = NULL;
		for (;;) {
			j = (j + 1) & sw->mac_mask;
			if (!sw->macs[j])
				return;
			k = sw_mac_slot(sw, sw->macs[j]->guard.mac);
			/* k cyclically in (i, j]: the entry stays reachable */
			if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
				continue;
			break;
		}
		sw->macs[i] = sw->macs[j];
		i = j;
	}
}
