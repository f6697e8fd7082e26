/* SPDX-License-Identifier: MIT */
/* util.h - helpers every file under native/ shares: branch hints, the clock
 *
 * One home for what was written in each file: likely()/unlikely() and the
 * monotonic clock in nanoseconds (CLOCK_MONOTONIC: never jumps, not the
 * time of day).
 */
#ifndef VNETSHARE_UTIL_H
#define VNETSHARE_UTIL_H

#include <stdint.h>
#include <time.h>

#define likely(x)	__builtin_expect(!!(x), 1)
#define unlikely(x)	__builtin_expect(!!(x), 0)

/**
 * util_now_ns() - CLOCK_MONOTONIC now
 *
 * Return: nanoseconds
 */
static inline uint64_t util_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif /* VNETSHARE_UTIL_H */
