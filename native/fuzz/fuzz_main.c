// SPDX-License-Identifier: MIT
/* fuzz_main.c - the fuzzers' one main(): options, episodes, replay, summary
 *
 * Linked into every fuzzer (scripts/fuzz.sh); the fuzzer defines
 * fuzz_target (fuzz.h) and nothing else of the driver. Episode k uses seed
 * SEED + k and a fixed number of iterations, so one seed replays exactly:
 * before each episode fuzz_run.replay holds the command that runs just it.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

struct fuzz_run fuzz_run = { .mode = -1, .first = 1 };

/**
 * fuzz_usage() - print how to call the fuzzer
 *
 * Return: 2, the exit status for a usage error
 */
static int fuzz_usage(void)
{
	const struct fuzz_target *t = &fuzz_target;
	const char *what = t->iters_name ? t->iters_name : "ITERATIONS";

	fprintf(stderr, "usage: %s ", fuzz_run.argv0);
	if (t->modes) {
		fprintf(stderr, "-m ");
		for (int i = 0; t->modes[i]; i++)
			fprintf(stderr, "%s%s", i ? "|" : "", t->modes[i]);
		fprintf(stderr, " ");
	}
	fprintf(stderr, "[-s SEED] [-n %s] [-t SECONDS]\n"
		"  one episode of %s from SEED; with -t, episodes of seeds "
		"SEED, SEED+1, ... until SECONDS have passed\n", what, what);
	return 2;
}

/**
 * fuzz_mode() - the index of a mode's name
 * @name:	-m's argument
 *
 * Return: its index in fuzz_target.modes, or -1
 */
static int fuzz_mode(const char *name)
{
	for (int i = 0; fuzz_target.modes && fuzz_target.modes[i]; i++)
		if (!strcmp(name, fuzz_target.modes[i]))
			return i;
	return -1;
}

/**
 * main() - parse the options, run the episodes, print the summary
 * @argc:	argument count
 * @argv:	-m MODE (a fuzzer with modes), -s SEED, -n ITERATIONS per
 *		episode, -t SECONDS
 *
 * Return: 0 if nothing was found, 1 on a finding (fuzz_vfail() exits), 2 on
 * a usage error, or what the fuzzer's init hook returned
 */
int main(int argc, char **argv)
{
	const struct fuzz_target *t = &fuzz_target;
	double secs = 0;
	uint64_t t0;
	int opt, rc;
	size_t n;

	fuzz_run.argv0 = argv[0];
	fuzz_run.iters = t->iters_default;
	while ((opt = getopt(argc, argv, "m:s:n:t:")) != -1) {
		switch (opt) {
		case 'm':
			fuzz_run.mode = fuzz_mode(optarg);
			if (fuzz_run.mode < 0)
				return fuzz_usage();
			break;
		case 's':
			fuzz_run.first = strtoull(optarg, NULL, 0);
			break;
		case 'n':
			fuzz_run.iters = (unsigned int)strtoul(optarg, NULL, 0);
			break;
		case 't':
			secs = strtod(optarg, NULL);
			break;
		default:
			return fuzz_usage();
		}
	}
	if (optind != argc || !fuzz_run.iters ||
	    (t->modes && fuzz_run.mode < 0))
		return fuzz_usage();
	if (t->init) {
		rc = t->init();
		if (rc)
			return rc;
	}
	t0 = fuzz_now_ns();
	for (uint64_t k = 0;; k++) {
		fuzz_run.seed = fuzz_run.first + k;
		n = (size_t)snprintf(fuzz_run.replay, sizeof(fuzz_run.replay),
				     "%s", fuzz_run.argv0);
		if (t->modes && n < sizeof(fuzz_run.replay))
			n += (size_t)snprintf(fuzz_run.replay + n,
					      sizeof(fuzz_run.replay) - n,
					      " -m %s", t->modes[fuzz_run.mode]);
		if (n < sizeof(fuzz_run.replay))
			snprintf(fuzz_run.replay + n, sizeof(fuzz_run.replay) - n,
				 " -s %" PRIu64 " -n %u", fuzz_run.seed,
				 fuzz_run.iters);
		t->episode(fuzz_run.seed, fuzz_run.iters);
		fuzz_run.episodes++;
		if ((fuzz_now_ns() - t0) / 1e9 >= secs)
			break;
	}
	t->finish((fuzz_now_ns() - t0) / 1e9);
	return 0;
}
