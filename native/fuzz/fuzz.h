/* SPDX-License-Identifier: MIT */
/* fuzz.h - what the fuzzers share: the driver, one seeded pseudo-random stream
 *
 * The driver (fuzz_main.c, linked into every fuzzer) owns main(): it parses
 * -m MODE, -s SEED, -n ITERATIONS and -t SECONDS, runs episodes of seeds
 * SEED, SEED+1, ... until SECONDS have passed (one episode without -t),
 * keeps the command that replays the current episode in fuzz_run.replay,
 * and calls the hooks of the one struct fuzz_target the fuzzer defines.
 *
 * splitmix64: tiny, fast, and the same numbers from the same seed on every
 * machine, so a failing seed replays exactly (docs/fuzzing.md).
 */
#ifndef VNETSHARE_FUZZ_H
#define VNETSHARE_FUZZ_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

/**
 * struct fuzz_target - a fuzzer, as the driver sees it (each fuzzer defines
 * one, named fuzz_target)
 * @name:	the fuzzer's name, for messages
 * @modes:	the names -m takes, NULL-terminated; NULL for a fuzzer
 *		without modes (else -m is required)
 * @iters_default: iterations per episode without -n
 * @iters_name:	what an iteration is called in the usage ("STEPS")
 * @init:	once, after the options, before the first episode (may be
 *		NULL): 0, or the exit status to end with
 * @episode:	one episode: @iters iterations from @seed (fuzz_run.seed);
 *		a finding ends the program (fuzz_vfail())
 * @finish:	after the last episode: print the summary (one JSON object on
 *		stdout) from @secs of wall time, free what init made
 */
struct fuzz_target {
	const char *name;
	const char *const *modes;
	unsigned int iters_default;
	const char *iters_name;
	int (*init)(void);
	void (*episode)(uint64_t seed, unsigned int iters);
	void (*finish)(double secs);
};

/**
 * struct fuzz_run - the run, as the driver keeps it (read-only for fuzzers)
 * @argv0:	the program's name
 * @mode:	index of -m in fuzz_target.modes, or -1 (no modes)
 * @first:	the first episode's seed (-s)
 * @seed:	the current episode's seed
 * @iters:	iterations per episode (-n)
 * @episodes:	episodes run to their end
 * @replay:	the command that replays the current episode (-m, -s, -n)
 */
struct fuzz_run {
	const char *argv0;
	int mode;
	uint64_t first, seed;
	unsigned int iters;
	uint64_t episodes;
	char replay[512];
};

extern const struct fuzz_target fuzz_target;
extern struct fuzz_run fuzz_run;

/**
 * fuzz_now_ns() - CLOCK_MONOTONIC in nanoseconds
 *
 * Return: the time
 */
static inline uint64_t fuzz_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

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
 * fuzz_vfail() - end a fuzzer on a finding: the message, then how to replay
 * it (fuzz_run.replay)
 * @fmt:	printf format of the finding (after the caller's own prefix)
 * @ap:		its arguments
 */
static inline __attribute__((noreturn)) void fuzz_vfail(const char *fmt,
							va_list ap)
{
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nreplay: %s\n", fuzz_run.replay);
	fflush(stderr);
	_exit(1);
}

#endif /* VNETSHARE_FUZZ_H */
