// SPDX-License-Identifier: MIT
/* agent.c - vnetshare-agent: one partition's agent, in C, under seccomp
 *
 * The daemon (vnetshare/manager.py) starts one agent per partition with
 *
 *   vnetshare-agent --fd N --name NAME
 *
 * N being its end of a SOCK_SEQPACKET socketpair; vnetshare/agent.py
 * builds the command line and the hand-off. It is the only agent: there is
 * no fallback that runs unconfined (docs/design-notes.md). It does this and
 * nothing else:
 *
 *  1. PR_SET_PDEATHSIG(SIGTERM); if the daemon already died (our parent is
 *     init), exit 0.
 *  2. Receive the daemon's one message: a JSON object {"name", "ring_size",
 *     "coalesce_usecs", "a2h_limit", "uid", "gid"} and 8 descriptors (SCM_RIGHTS) in
 *     pack_fds() order: the TAP, the A2H ring's producer end (memfd, wait,
 *     kick), the H2A ring's consumer end (memfd, wait, kick), and the
 *     partition's network namespace.
 *  3. Join that namespace (setns) and close it: the agent lives in its
 *     partition's network namespace, not the daemon's, so whatever it
 *     could reach there the tenant reaches already (docs/design-notes.md,
 *     "Each agent its own uid, in its partition's namespace").
 *  4. Drop every privilege, as drop_privileges() does: the capability
 *     bounding set, the supplementary groups, gid and uid to the hello's
 *     (its partition's own, from the daemon's --agent-uids: no other agent
 *     has them, so none may signal or trace it), which clears the
 *     permitted, effective and ambient capabilities; not dumpable (even
 *     its own uid may not trace it or read its memory); no_new_privs. The
 *     parent-death signal is set again afterwards: the kernel clears it
 *     when the effective uid or gid changes.
 *  5. Map the rings (ring_attach(), both ends) and make the pump
 *     (pump_create(), pump_set_coalesce(), pump_set_a2h_limit()) - only
 *     after step 4.
 *  6. Start the pump thread, held at a gate (an eventfd); install the
 *     seccomp filter below on both threads (SECCOMP_FILTER_FLAG_TSYNC);
 *     open the gate. No frame is moved before the filter is in place.
 *  7. Answer {"ready": true, "pid": N}, then wait for SIGTERM (or SIGINT),
 *     the daemon's end of the socketpair closing (EOF), or the pump
 *     failing. The first two stop the pump and exit 0 after the line
 *     "vnetshare-agent[NAME]: stopped"; a pump that fails (its TAP was
 *     deleted) ends the agent at once, exit 1, so the daemon sees it and
 *     restarts it or gives up.
 * Any error: one line "vnetshare-agent[NAME]: ..." on stderr, exit 1
 * (exit 2 for a bad command line); before the "ready" answer the same
 * words go to the daemon too, as {"ready": false, "error": "..."}, so a
 * create that fails says why in its one line.
 *
 * The seccomp filter is an allow-list: SECCOMP_RET_KILL_PROCESS for
 * anything else, for another architecture's system call numbers (the arch
 * field is checked first) and for x32 numbers on x86-64. Measured with
 * strace -f over start, traffic both ways and both ends; what stays
 * allowed, and who needs it (docs/design-notes.md, "The agent is C"):
 *   read		pump: TAP frames into A2H (ring_read_fd()), wakeup pipe
 *			drains, its gate; main: the socketpair (EOF)
 *   write		pump: ring kicks, pump_stop()'s eventfd, "ended";
 *			main: "ready", the gate, the stderr line
 *   writev		pump: H2A frames onto the TAP
 *   poll, ppoll	pump_sleep(); main's wait; the parked pump thread
 *   clock_nanosleep, nanosleep  coalescing naps (coalesce.h)
 *   clock_gettime	the clock (vDSO; the system call only as its fallback)
 *   sched_yield	between the turns of a poll for an answer (coalesce.h)
 *   prctl		only PR_SET_TIMERSLACK (coalesce_init() in pump_run())
 *   exit_group		the end
 *   restart_syscall	a poll or nap interrupted (ptrace, SIGSTOP) resumes
 * (poll/ppoll and nanosleep/clock_nanosleep are pairs: which one glibc
 * uses depends on its version and the architecture.) Nothing else: no
 * futex (the threads meet through eventfds), no exit (the pump thread
 * never returns, exit_group() ends it), no munmap or close (the kernel
 * unmaps the rings and closes the descriptors at exit).
 *
 * Test hook: if the hello has "seccomp_selftest": CALL, the agent makes
 * that call once right after its "ready" answer, one the filter forbids,
 * so the kernel kills it with SIGSYS: "socket" (true says the same),
 * "kill" (signal 0 to the daemon), "ptrace" (PTRACE_SEIZE of the daemon),
 * "process_vm_readv" (of the daemon's memory), "open" (the daemon's
 * /proc/PID/mem). Only tests ask for it: the daemon sets it only when its
 * environment says so (vnetshare/agent.py, SELFTEST_ENV);
 * tests/netns/test_agent_c.py and test_agents_apart.py check the kill and
 * the restart. Without the filter the call would still fail, by the uid
 * (the daemon is root), and the agent would say so and exit 1.
 *
 * Memory: no stdio, no allocation after the pump is made; the hello buffer
 * is static (untouched pages cost nothing) and the pump thread has a small
 * stack.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "pump.h"
#include "ring.h"

#define AGENT_HELLO_MAX		65536	/* as vnetshare/agent.py HELLO_MAX */
#define AGENT_MAX_FDS		16	/* as vnetshare/agent.py MAX_FDS */
#define AGENT_HANDOFF_FDS	8	/* TAP + 3 per ring + netns */
#define AGENT_FD_NETNS		7
#define AGENT_ID_MAX		0x7fffffffu	/* vnetshare/core/config.py AGENT_UID_MAX */
#define AGENT_STACK_SIZE	(128u * 1024u)
#define AGENT_JSON_DEPTH	16
#define AGENT_KEY_MAX		32

#if defined(__x86_64__)
#define AGENT_AUDIT_ARCH	AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define AGENT_AUDIT_ARCH	AUDIT_ARCH_AARCH64
#else
#error "vnetshare-agent: seccomp filter for x86-64 and aarch64 only"
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define AGENT_ARG_LO(n)	(offsetof(struct seccomp_data, args[n]))
#else
#define AGENT_ARG_LO(n)	(offsetof(struct seccomp_data, args[n]) + 4)
#endif
#define AGENT_ARG_HI(n)	(AGENT_ARG_LO(n) ^ 4)

static const char *agent_name = "?";

/* The test hook's calls (file comment), by the name the hello gives. */
enum selftest {
	SELFTEST_NONE,
	SELFTEST_SOCKET,
	SELFTEST_KILL,
	SELFTEST_PTRACE,
	SELFTEST_VM_READV,
	SELFTEST_OPEN,
	SELFTEST__MAX,
};

static const char *const selftest_names[SELFTEST__MAX] = {
	[SELFTEST_SOCKET] = "socket",
	[SELFTEST_KILL] = "kill",
	[SELFTEST_PTRACE] = "ptrace",
	[SELFTEST_VM_READV] = "process_vm_readv",
	[SELFTEST_OPEN] = "open",
};

/**
 * struct hello - what the daemon's JSON says
 * @ring_size:	data size of each ring
 * @coalesce_usecs: coalescing window, or -1 for the pump's default (null)
 * @a2h_limit:	1 for the byte limit on A2H (dql.h), 0 for none, -1 for the
 *		pump's default (absent or null)
 * @uid:	the uid to run as, 1 to AGENT_ID_MAX
 * @gid:	the gid to run as, likewise
 * @selftest:	test hook: the forbidden call to make after "ready"
 */
struct hello {
	uint64_t ring_size;
	long coalesce_usecs;
	int a2h_limit;
	uid_t uid;
	gid_t gid;
	enum selftest selftest;
};

/* The pump thread's world: set before it starts, read by it. */
static struct {
	struct pump *pump;
	int started_efd;	/* it writes this when it runs */
	int go_efd;		/* and waits for this: the filter is in place */
	int end_efd;		/* it writes this when pump_run() returned */
	int rc;			/* pump_run()'s return, read after end_efd said so */
} agent_pump;

static char agent_hello_buf[AGENT_HELLO_MAX];

/* our end of the socketpair, and whether the daemon has had our answer */
static int agent_sock = -1;
static int agent_answered;

/**
 * tell_daemon() - the reason we fail, as our answer: {"ready": false, "error": ...}
 * @msg:	the words after "vnetshare-agent[NAME]: "
 *
 * Only before the "ready" answer, and only once; JSON-escaped, every byte
 * outside printable ASCII as \u00XX. Best effort: we are failing anyway.
 */
static void tell_daemon(const char *msg)
{
	static const char head[] = "{\"ready\": false, \"error\": \"";
	char out[sizeof(head) + 6 * 512 + 4];
	size_t n = sizeof(head) - 1;

	if (agent_sock < 0 || agent_answered)
		return;
	agent_answered = 1;
	memcpy(out, head, n);
	for (const unsigned char *c = (const unsigned char *)msg; *c; c++) {
		if (*c == '"' || *c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)*c;
		} else if (*c < 0x20 || *c >= 0x7f) {
			n += (size_t)snprintf(out + n, 7, "\\u%04x", *c);
		} else {
			out[n++] = (char)*c;
		}
	}
	memcpy(out + n, "\"}\n", 3);
	n += 3;
	while (write(agent_sock, out, n) < 0 && errno == EINTR)
		;
}

/**
 * vsay() - one line "vnetshare-agent[NAME]: ..." on stderr, no stdio
 * @fmt:	printf format
 * @ap:		its arguments
 * @daemon:	also tell_daemon() the words
 */
static void vsay(const char *fmt, va_list ap, int daemon)
{
	char line[512], msg[512];
	int n, m;

	m = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (m < 0)
		msg[0] = 0;
	n = snprintf(line, sizeof(line), "vnetshare-agent[%s]: %s", agent_name, msg);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	while (write(STDERR_FILENO, line, (size_t)n) < 0 && errno == EINTR)
		;
	if (daemon)
		tell_daemon(msg);
}

/**
 * say() - one line "vnetshare-agent[NAME]: ..." on stderr
 * @fmt:	printf format
 */
__attribute__((format(printf, 1, 2)))
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap, 0);
	va_end(ap);
}

/**
 * fail() - say() the line, tell the daemon if it waits for our answer, exit 1
 * @fmt:	printf format
 */
__attribute__((format(printf, 1, 2), noreturn))
static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap, 1);
	va_end(ap);
	_exit(1);
}

/* -- the hello: a flat JSON object ------------------------------------------ */

struct json {
	const char *s;
	size_t n;
	size_t i;
	const char *err;
};

static void json_ws(struct json *j)
{
	while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' ||
			       j->s[j->i] == '\n' || j->s[j->i] == '\r'))
		j->i++;
}

static int json_lit(struct json *j, const char *lit)
{
	size_t len = strlen(lit);

	if (j->n - j->i < len || memcmp(j->s + j->i, lit, len)) {
		j->err = "bad literal";
		return -1;
	}
	j->i += len;
	return 0;
}

/**
 * json_string() - a string; its first @max - 1 bytes (escapes kept as
 * written) go to @out if given
 * @j:		parser
 * @out:	buffer or NULL
 * @max:	its size
 *
 * Return: 0, 1 if @out was too small (the key is then no key we know), -1
 */
static int json_string(struct json *j, char *out, size_t max)
{
	size_t o = 0;
	int over = 0;

	if (j->i >= j->n || j->s[j->i] != '"') {
		j->err = "a string expected";
		return -1;
	}
	j->i++;
	while (j->i < j->n && j->s[j->i] != '"') {
		unsigned char c = (unsigned char)j->s[j->i];

		if (c < 0x20) {
			j->err = "a control character in a string";
			return -1;
		}
		if (c == '\\') {
			if (++j->i >= j->n)
				break;
			over = 1;	/* no key we know has an escape */
		}
		if (out && o + 1 < max)
			out[o++] = (char)j->s[j->i];
		else
			over = 1;
		j->i++;
	}
	if (j->i >= j->n) {
		j->err = "an unterminated string";
		return -1;
	}
	j->i++;
	if (out)
		out[o] = 0;
	return over;
}

/**
 * json_uint() - a non-negative integer, as the daemon writes them
 * @j:		parser
 * @v:		out
 *
 * Return: 0, or -1 for anything else (a sign, a fraction, an exponent,
 * more than 64 bits)
 */
static int json_uint(struct json *j, uint64_t *v)
{
	size_t start = j->i;
	uint64_t x = 0;

	while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') {
		unsigned int d = (unsigned int)(j->s[j->i] - '0');

		if (x > (UINT64_MAX - d) / 10) {
			j->err = "a number too large";
			return -1;
		}
		x = x * 10 + d;
		j->i++;
	}
	if (j->i == start || (j->i < j->n && strchr(".eE+-", j->s[j->i]) &&
			      j->s[j->i])) {
		j->err = "a non-negative integer expected";
		return -1;
	}
	*v = x;
	return 0;
}

/**
 * json_uint_or_null() - null (-1 out), or a json_uint() of at most @max
 * @j:		parser
 * @v:		out: -1 for null, else the number
 * @max:	the largest number allowed (<= INT64_MAX)
 * @over:	the error past @max
 *
 * Return: 0, or -1
 */
static int json_uint_or_null(struct json *j, int64_t *v, uint64_t max,
			     const char *over)
{
	uint64_t u;

	if (j->i < j->n && j->s[j->i] == 'n') {
		if (json_lit(j, "null") < 0)
			return -1;
		*v = -1;
		return 0;
	}
	if (json_uint(j, &u) < 0)
		return -1;
	if (u > max) {
		j->err = over;
		return -1;
	}
	*v = (int64_t)u;
	return 0;
}

/* Skip any value (keys we do not know). */
static int json_skip(struct json *j, int depth)
{
	char c;

	json_ws(j);
	if (j->i >= j->n) {
		j->err = "a value expected";
		return -1;
	}
	c = j->s[j->i];
	if (c == '"')
		return json_string(j, NULL, 0) < 0 ? -1 : 0;
	if (c == 't')
		return json_lit(j, "true");
	if (c == 'f')
		return json_lit(j, "false");
	if (c == 'n')
		return json_lit(j, "null");
	if (c == '{' || c == '[') {
		char close = c == '{' ? '}' : ']';

		if (depth >= AGENT_JSON_DEPTH) {
			j->err = "nested too deep";
			return -1;
		}
		j->i++;
		json_ws(j);
		if (j->i < j->n && j->s[j->i] == close) {
			j->i++;
			return 0;
		}
		for (;;) {
			if (c == '{') {
				json_ws(j);
				if (json_string(j, NULL, 0) < 0)
					return -1;
				json_ws(j);
				if (j->i >= j->n || j->s[j->i] != ':') {
					j->err = "':' expected";
					return -1;
				}
				j->i++;
			}
			if (json_skip(j, depth + 1) < 0)
				return -1;
			json_ws(j);
			if (j->i < j->n && j->s[j->i] == ',') {
				j->i++;
				continue;
			}
			if (j->i < j->n && j->s[j->i] == close) {
				j->i++;
				return 0;
			}
			j->err = "',' or a closing bracket expected";
			return -1;
		}
	}
	if (c == '-' || (c >= '0' && c <= '9')) {
		if (c == '-')
			j->i++;
		while (j->i < j->n && strchr("0123456789.eE+-", j->s[j->i]) &&
		       j->s[j->i])
			j->i++;
		return 0;
	}
	j->err = "a value expected";
	return -1;
}

/**
 * parse_selftest() - "seccomp_selftest": false, true ("socket") or a call's name
 * @j:		parser, at the value
 * @out:	the call, SELFTEST_NONE for false
 *
 * Return: 0, or -1 for anything else (an unknown name among them)
 */
static int parse_selftest(struct json *j, enum selftest *out)
{
	char name[AGENT_KEY_MAX];
	int over;

	if (j->i < j->n && j->s[j->i] == 't') {
		*out = SELFTEST_SOCKET;
		return json_lit(j, "true");
	}
	if (j->i < j->n && j->s[j->i] == 'f') {
		*out = SELFTEST_NONE;
		return json_lit(j, "false");
	}
	over = json_string(j, name, sizeof(name));
	if (over < 0)
		return -1;
	for (int t = SELFTEST_NONE + 1; !over && t < SELFTEST__MAX; t++) {
		if (!strcmp(name, selftest_names[t])) {
			*out = (enum selftest)t;
			return 0;
		}
	}
	j->err = "seccomp_selftest: no such call";
	return -1;
}

/**
 * parse_hello() - the daemon's JSON object; unknown keys are skipped
 * @s:		the message
 * @n:		its length
 * @h:		out
 *
 * Return: 0, or -1 with a reason in @why
 */
static int parse_hello(const char *s, size_t n, struct hello *h, const char **why)
{
	struct json j = { .s = s, .n = n };
	char key[AGENT_KEY_MAX];
	int have_size = 0, have_uid = 0, have_gid = 0;

	h->ring_size = 0;
	h->coalesce_usecs = -1;
	h->a2h_limit = -1;
	h->uid = 0;
	h->gid = 0;
	h->selftest = SELFTEST_NONE;
	json_ws(&j);
	if (j.i >= j.n || j.s[j.i] != '{') {
		*why = "not a JSON object";
		return -1;
	}
	j.i++;
	json_ws(&j);
	if (j.i < j.n && j.s[j.i] == '}') {
		j.i++;
		goto end;
	}
	for (;;) {
		int over;

		json_ws(&j);
		over = json_string(&j, key, sizeof(key));
		if (over < 0)
			goto bad;
		if (over)
			key[0] = 0;
		json_ws(&j);
		if (j.i >= j.n || j.s[j.i] != ':') {
			j.err = "':' expected";
			goto bad;
		}
		j.i++;
		json_ws(&j);
		if (!strcmp(key, "ring_size")) {
			if (json_uint(&j, &h->ring_size) < 0)
				goto bad;
			have_size = 1;
		} else if (!strcmp(key, "coalesce_usecs")) {
			int64_t v;

			if (json_uint_or_null(&j, &v, LONG_MAX,
					      "coalesce_usecs too large") < 0)
				goto bad;
			h->coalesce_usecs = (long)v;
		} else if (!strcmp(key, "a2h_limit")) {
			int64_t v;

			if (json_uint_or_null(&j, &v, 1,
					      "a2h_limit not 0 or 1") < 0)
				goto bad;
			h->a2h_limit = (int)v;
		} else if (!strcmp(key, "uid") || !strcmp(key, "gid")) {
			int is_uid = key[0] == 'u';
			uint64_t v;

			if (json_uint(&j, &v) < 0)
				goto bad;
			if (v < 1 || v > AGENT_ID_MAX) {
				j.err = is_uid ? "uid not 1 to 2147483647 (never root)" :
						 "gid not 1 to 2147483647 (never root)";
				goto bad;
			}
			if (is_uid) {
				h->uid = (uid_t)v;
				have_uid = 1;
			} else {
				h->gid = (gid_t)v;
				have_gid = 1;
			}
		} else if (!strcmp(key, "seccomp_selftest")) {
			if (parse_selftest(&j, &h->selftest) < 0)
				goto bad;
		} else if (json_skip(&j, 1) < 0) {
			goto bad;
		}
		json_ws(&j);
		if (j.i < j.n && j.s[j.i] == ',') {
			j.i++;
			continue;
		}
		if (j.i < j.n && j.s[j.i] == '}') {
			j.i++;
			break;
		}
		j.err = "',' or '}' expected";
		goto bad;
	}
end:
	json_ws(&j);
	if (j.i != j.n) {
		*why = "text after the object";
		return -1;
	}
	if (!have_size || !have_uid || !have_gid) {
		*why = !have_size ? "no ring_size" : !have_uid ? "no uid" : "no gid";
		return -1;
	}
	return 0;
bad:
	*why = j.err;
	return -1;
}

/* -- the steps --------------------------------------------------------------- */

/**
 * receive_hello() - the daemon's one message: the JSON and the descriptors
 * @sock:	our end of the socketpair
 * @fds:	the AGENT_HANDOFF_FDS descriptors, out
 *
 * Return: the JSON's length; exits on any error
 */
static size_t receive_hello(int sock, int fds[AGENT_HANDOFF_FDS])
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * AGENT_MAX_FDS)];
	} ctl;
	struct iovec iov = { .iov_base = agent_hello_buf,
			     .iov_len = sizeof(agent_hello_buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	int got[AGENT_MAX_FDS];
	unsigned int nfds = 0;
	struct cmsghdr *c;
	ssize_t n;

	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		fail("receive from the daemon (--fd %d): %s", sock, strerror(errno));
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k && nfds < AGENT_MAX_FDS; i++)
			memcpy(&got[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
	}
	if (n == 0 && nfds == 0)
		fail("the daemon closed the socket before sending descriptors");
	if (nfds != AGENT_HANDOFF_FDS || (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC))) {
		for (unsigned int i = 0; i < nfds; i++)
			close(got[i]);
		if (mh.msg_flags & MSG_TRUNC)
			fail("the daemon's message is longer than %d bytes", AGENT_HELLO_MAX);
		fail("expected %d descriptors from the daemon, got %u%s",
		     AGENT_HANDOFF_FDS, nfds,
		     mh.msg_flags & MSG_CTRUNC ? " or more" : "");
	}
	memcpy(fds, got, sizeof(int) * AGENT_HANDOFF_FDS);
	return (size_t)n;
}

/**
 * join_netns() - move into the partition's network namespace, close its fd
 * @fd:		the namespace, from the hand-off
 *
 * Skipped when we are in it already (no privilege is needed for that);
 * exits on any error, a descriptor that is no network namespace among them.
 */
static void join_netns(int fd)
{
	struct stat want, here;

	if (fstat(fd, &want) < 0)
		fail("the partition's network namespace: %s", strerror(errno));
	if (stat("/proc/thread-self/ns/net", &here) < 0 ||
	    here.st_dev != want.st_dev || here.st_ino != want.st_ino) {
		if (setns(fd, CLONE_NEWNET) < 0)
			fail("join the partition's network namespace: %s", strerror(errno));
	}
	close(fd);
}

/**
 * drop_privileges() - give up root for good, to the partition's own ids
 * @uid:	the agent's uid (never 0: parse_hello() refused it)
 * @gid:	and gid
 *
 * As root: bounding set, groups, gid, uid (clearing the permitted,
 * effective and ambient capabilities). Not as root (a test): the ids must
 * be ours already. Then not dumpable, whatever fs.suid_dumpable says: not
 * even a process of our own uid may ptrace us or read /proc/PID/mem; and
 * no_new_privs. Exits on any error.
 */
static void drop_privileges(uid_t uid, gid_t gid)
{
	if (geteuid() == 0) {
		for (unsigned long cap = 0; cap < 64; cap++)
			if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0)
				break;	/* past the last capability the kernel knows */
		if (setgroups(0, NULL) < 0)
			fail("setgroups: %s", strerror(errno));
		if (setresgid(gid, gid, gid) < 0)
			fail("setresgid(%u): %s", (unsigned int)gid, strerror(errno));
		if (setresuid(uid, uid, uid) < 0)
			fail("setresuid(%u): %s", (unsigned int)uid, strerror(errno));
	} else if (getuid() != uid || getgid() != gid) {
		fail("not root, so cannot become uid %u gid %u", (unsigned int)uid,
		     (unsigned int)gid);
	}
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		fail("prctl(PR_SET_DUMPABLE): %s", strerror(errno));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		fail("prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
}

/* the daemon's pid, as main() first saw it */
static pid_t parent;

/**
 * watch_parent() - SIGTERM when the daemon dies; exit 0 if it already has
 *
 * "Already has": our parent changed since main() began (reparented). Not
 * "our parent is 1": in a container the daemon may be PID 1 itself. A
 * daemon that died before main() began closed its end of the socketpair:
 * the hand-off read sees EOF.
 */
static void watch_parent(void)
{
	if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) != 0)
		fail("prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
	if (getppid() != parent)	/* the daemon died before we set it */
		_exit(0);
}

#define AGENT_KILL	BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS)
#define AGENT_ALLOW(sysno) \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (sysno), 0, 1), \
	BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
/* Allow @sysno only when its argument @arg is exactly @val (64 bits). */
#define AGENT_ALLOW_ARG(sysno, arg, val) \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (sysno), 0, 5), \
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, AGENT_ARG_LO(arg)), \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(val), 0, 3), \
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, AGENT_ARG_HI(arg)), \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)((uint64_t)(val) >> 32), 0, 1), \
	BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW), \
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))

/**
 * install_seccomp() - the allow-list (file comment), on every thread
 */
static void install_seccomp(void)
{
	static const struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AGENT_AUDIT_ARCH, 1, 0),
		AGENT_KILL,
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#ifdef __x86_64__
		/* x32 system calls: same arch field, numbers with this bit */
		BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1),
		AGENT_KILL,
#endif
		AGENT_ALLOW(__NR_read),
		AGENT_ALLOW(__NR_write),
		AGENT_ALLOW(__NR_writev),
#ifdef __NR_poll
		AGENT_ALLOW(__NR_poll),
#endif
		AGENT_ALLOW(__NR_ppoll),
		AGENT_ALLOW(__NR_clock_nanosleep),
#ifdef __NR_nanosleep
		AGENT_ALLOW(__NR_nanosleep),
#endif
		AGENT_ALLOW(__NR_clock_gettime),
		AGENT_ALLOW(__NR_sched_yield),
		AGENT_ALLOW(__NR_exit_group),
		AGENT_ALLOW(__NR_restart_syscall),
		AGENT_ALLOW_ARG(__NR_prctl, 0, PR_SET_TIMERSLACK),
		AGENT_KILL,
	};
	const struct sock_fprog prog = {
		.len = (unsigned short)(sizeof(filter) / sizeof(filter[0])),
		.filter = (struct sock_filter *)filter,
	};
	long rc;

	rc = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER,
		     SECCOMP_FILTER_FLAG_TSYNC, &prog);
	if (rc < 0)
		fail("seccomp: %s", strerror(errno));
	if (rc > 0)
		fail("seccomp: thread %ld could not be synchronised", rc);
}

/**
 * selftest() - the test hook (file comment): one call the filter forbids
 * @call:	which
 *
 * The filter kills us inside the call; if it returns, the filter let it
 * through: say what it returned and exit 1.
 */
static void selftest(enum selftest call)
{
	char path[64], buf[8];
	struct iovec local = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct iovec remote = { .iov_base = (void *)0x10000, .iov_len = sizeof(buf) };
	long r = -1;

	switch (call) {
	case SELFTEST_SOCKET:
		r = socket(AF_INET, SOCK_DGRAM, 0);
		break;
	case SELFTEST_KILL:
		r = kill(parent, 0);
		break;
	case SELFTEST_PTRACE:
		r = ptrace(PTRACE_SEIZE, parent, NULL, NULL);
		break;
	case SELFTEST_VM_READV:
		r = process_vm_readv(parent, &local, 1, &remote, 1, 0);
		break;
	case SELFTEST_OPEN:
		snprintf(path, sizeof(path), "/proc/%d/mem", (int)parent);
		r = open(path, O_RDONLY | O_CLOEXEC);
		break;
	default:
		break;
	}
	fail("seccomp self-test: %s() was allowed (%ld, %s)", selftest_names[call], r,
	     r < 0 ? strerror(errno) : "no error");
}

/* One eventfd step between the two threads: no futex, no barrier. */
static void efd_post(int fd)
{
	uint64_t one = 1;

	while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static void efd_wait(int fd)
{
	uint64_t v;

	while (read(fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
}

/**
 * pump_main() - the pump thread: run the pump once the filter is in place
 * @arg:	unused
 *
 * It never returns: a returning thread makes glibc call rt_sigprocmask,
 * madvise and exit, which the filter does not allow. Once the pump has
 * ended and said so, the thread parks in poll() until exit_group() ends it.
 *
 * Return: never
 */
static void *pump_main(void *arg)
{
	(void)arg;
	efd_post(agent_pump.started_efd);
	efd_wait(agent_pump.go_efd);
	__atomic_store_n(&agent_pump.rc, pump_run(agent_pump.pump), __ATOMIC_RELEASE);
	efd_post(agent_pump.end_efd);
	for (;;)
		poll(NULL, 0, -1);
	return NULL;
}

/**
 * wait_for_the_end() - until SIGTERM/SIGINT, EOF from the daemon, or the
 * pump's end
 * @sock:	our end of the socketpair
 * @sig_fd:	signalfd of SIGTERM and SIGINT
 *
 * Return: 1 if the pump ended by itself, 0 otherwise
 */
static int wait_for_the_end(int sock, int sig_fd)
{
	struct pollfd pfd[3] = {
		{ .fd = sock, .events = POLLIN },
		{ .fd = sig_fd, .events = POLLIN },
		{ .fd = agent_pump.end_efd, .events = POLLIN },
	};
	char buf[256];

	for (;;) {
		ssize_t n;

		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			fail("poll: %s", strerror(errno));
		}
		if (pfd[2].revents)
			return 1;
		if (pfd[1].revents)
			return 0;
		if (pfd[0].revents) {
			/* The daemon sends nothing more: data is ignored,
			 * EOF or an error is the end. */
			n = read(sock, buf, sizeof(buf));
			if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
				return 0;
		}
	}
}

/* Until the pump thread says pump_run() returned. */
static void wait_for_the_pump(void)
{
	struct pollfd pfd = { .fd = agent_pump.end_efd, .events = POLLIN };

	while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
		;
}

static int parse_fd(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > INT_MAX)
		return -1;
	return (int)v;
}

static void usage(const char *why)
{
	static const char text[] =
		"usage: vnetshare-agent --fd N --name NAME (started by the daemon)\n";
	char line[256];
	int n;

	n = snprintf(line, sizeof(line), "vnetshare-agent: error: %s\n", why);
	if (write(STDERR_FILENO, text, sizeof(text) - 1) < 0 ||
	    write(STDERR_FILENO, line, n > 0 ? (size_t)n : 0) < 0)
		_exit(2);
	_exit(2);
}

int main(int argc, char **argv)
{
	int fds[AGENT_HANDOFF_FDS], sock = -1, named = 0, sig_fd, rc, ended;
	struct ring *a2h, *h2a;
	struct ring_end a2h_end, h2a_end;
	pthread_attr_t attr;
	pthread_t thread;
	struct hello hello;
	const char *why = NULL;
	char ready[64];
	pid_t pid = getpid();	/* getpid() is not on the allow-list */
	sigset_t sigs;
	size_t len;

	parent = getppid();
	int n;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = NULL;

		if (!strcmp(a, "--fd") || !strcmp(a, "--name")) {
			if (i + 1 >= argc)
				usage("an option needs a value");
			v = argv[++i];
		} else if (!strncmp(a, "--fd=", 5) || !strncmp(a, "--name=", 7)) {
			v = strchr(a, '=') + 1;
		} else {
			usage("unknown argument");
		}
		if (a[2] == 'f') {
			sock = parse_fd(v);
			if (sock < 0)
				usage("--fd: not a descriptor number");
		} else {
			agent_name = v;
			named = 1;
		}
	}
	if (sock < 0 || !named)
		usage("--fd and --name are required");
	agent_sock = sock;

	/* Stop signals come through a signalfd, blocked from the start and in
	 * every thread (the pump thread inherits the mask): no handler runs
	 * anywhere, and one that comes while we start ends us once we wait. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	if (sigprocmask(SIG_BLOCK, &sigs, NULL) < 0)
		fail("sigprocmask: %s", strerror(errno));
	sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sig_fd < 0)
		fail("signalfd: %s", strerror(errno));
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		fail("signal(SIGPIPE): %s", strerror(errno));

	watch_parent();
	len = receive_hello(sock, fds);
	if (parse_hello(agent_hello_buf, len, &hello, &why) < 0)
		fail("bad message from the daemon: %s", why);

	join_netns(fds[AGENT_FD_NETNS]);
	drop_privileges(hello.uid, hello.gid);
	watch_parent();	/* the uid change cleared the parent-death signal */

	a2h_end = (struct ring_end){ fds[1], fds[2], fds[3] };
	h2a_end = (struct ring_end){ fds[4], fds[5], fds[6] };
	rc = ring_attach(&a2h, &a2h_end, RING_PRODUCER, hello.ring_size);
	if (rc < 0)
		fail("ring_attach(A2H, %llu): %s",
		     (unsigned long long)hello.ring_size, strerror(-rc));
	rc = ring_attach(&h2a, &h2a_end, RING_CONSUMER, hello.ring_size);
	if (rc < 0)
		fail("ring_attach(H2A, %llu): %s",
		     (unsigned long long)hello.ring_size, strerror(-rc));
	rc = pump_create(&agent_pump.pump, fds[0], a2h, h2a, 0);
	if (rc < 0)
		fail("pump_create: %s", strerror(-rc));
	if (hello.coalesce_usecs >= 0) {
		rc = hello.coalesce_usecs > UINT_MAX ? -EINVAL :
			pump_set_coalesce(agent_pump.pump,
					  (unsigned int)hello.coalesce_usecs);
		if (rc < 0)
			fail("pump_set_coalesce(%ld): %s", hello.coalesce_usecs,
			     strerror(-rc));
	}
	if (hello.a2h_limit >= 0) {
		rc = pump_set_a2h_limit(agent_pump.pump, hello.a2h_limit);
		if (rc < 0)
			fail("pump_set_a2h_limit(%d): %s", hello.a2h_limit,
			     strerror(-rc));
	}

	agent_pump.end_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	agent_pump.started_efd = eventfd(0, EFD_CLOEXEC);
	agent_pump.go_efd = eventfd(0, EFD_CLOEXEC);
	if (agent_pump.end_efd < 0 || agent_pump.started_efd < 0 || agent_pump.go_efd < 0)
		fail("eventfd: %s", strerror(errno));

	rc = pthread_attr_init(&attr);
	if (!rc)
		rc = pthread_attr_setstacksize(&attr, AGENT_STACK_SIZE);
	if (!rc)
		rc = pthread_create(&thread, &attr, pump_main, NULL);
	if (rc)
		fail("the pump thread: %s", strerror(rc));
	efd_wait(agent_pump.started_efd);	/* it runs, held at the gate */
	install_seccomp();
	efd_post(agent_pump.go_efd);		/* open */

	n = snprintf(ready, sizeof(ready), "{\"ready\": true, \"pid\": %d}\n",
		     (int)pid);
	agent_answered = 1;
	if (write(sock, ready, (size_t)n) != n)
		fail("answer the daemon: %s", strerror(errno));

	if (hello.selftest != SELFTEST_NONE)
		selftest(hello.selftest);

	ended = wait_for_the_end(sock, sig_fd);
	if (!ended) {
		rc = pump_stop(agent_pump.pump);
		if (rc < 0)
			fail("pump_stop: %s", strerror(-rc));
		wait_for_the_pump();
	}
	rc = __atomic_load_n(&agent_pump.rc, __ATOMIC_ACQUIRE);
	if (rc < 0)
		fail("pump: %s", strerror(-rc));
	say("stopped");
	_exit(0);	/* exit_group: the parked pump thread ends with us */
}
