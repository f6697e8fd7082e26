/* SPDX-License-Identifier: MIT */
/* fuzz.h - what the fuzzers share: one seeded pseudo-random stream
 *
 * splitmix64: tiny, fast, and the same numbers from the same seed on every
 * machine, so a failing seed replays exactly (docs/fuzzing.md).
 */
#ifndef VNETSHARE_FUZZ_H
#define VNETSHARE_FUZZ_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

/**
 * fuzz_rand() - splitmix64: the next pseudo-random number of a stream
 * @s:		state
 *
 * Return: 64 random bits
 */
static inline uint64_t fuzz_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/**
 * fuzz_below() - a random number in [0, n)
 * @s:		state
 * @n:		bound (0 gives 0)
 *
 * Return: the number
 */
static inline uint64_t fuzz_below(uint64_t *s, uint64_t n)
{
	return n ? fuzz_rand(s) % n : 0;
}

/**
 * fuzz_vfail() - end a fuzzer on a finding: the message, then how to replay it
 * @replay:	the command that replays the failing seed
 * @fmt:	printf format of the finding (after the caller's own prefix)
 * @ap:		its arguments
 */
static inline __attribute__((noreturn)) void fuzz_vfail(const char *replay,
							const char *fmt, va_list ap)
{
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nreplay: %s\n", replay);
	fflush(stderr);
	_exit(1);
}

#endif /* VNETSHARE_FUZZ_H */
