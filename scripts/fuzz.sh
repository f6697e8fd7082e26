#!/usr/bin/env bash
# fuzz.sh - build the ring, guard and capture filter fuzzers under ASan+UBSan and run them
#
#   ./scripts/fuzz.sh [SECONDS] [SEED]        (no root needed)
#
# Builds native/fuzz/fuzz_ring.c (with native/ring.c),
# native/fuzz/fuzz_guard.c (with native/guard.c) and native/fuzz/fuzz_cbpf.c
# (with native/cbpf.c), each with the shared driver native/fuzz/fuzz_main.c
# (its main()), with -fsanitize=address,undefined -fno-sanitize-recover=all and -Werror into
# build/fuzz/, then runs each fuzzer for its share of SECONDS (default 60):
# ring cons 27%, prod 18%, race 15%, fds 10%, guard 22%, cbpf 8%. Each runs episodes
# of seeds SEED, SEED+1, ... (SEED defaults to the time). Prints per fuzzer:
# iterations, records accepted, violations by reason, verdicts; on a finding
# the failing seed and the command that replays it. Exit status: 0, or 1 if
# any fuzzer found something (or failed to build). docs/fuzzing.md says more.
#
# Environment (for tests and mutation checks):
#   FUZZ_ONLY="cons guard"   run only these (cons prod race fds guard cbpf)
#   FUZZ_RING_SRC, FUZZ_GUARD_SRC, FUZZ_CBPF_SRC   build with these instead of native/*.c
#   FUZZ_BUILD=dir           build directory (default build/fuzz)
#   FUZZ_JSON=file           write every summary there, one JSON per line
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
seed=${2:-$(date +%s)}
out=${FUZZ_BUILD:-build/fuzz}
only=${FUZZ_ONLY:-cons prod race fds guard cbpf}
ring_src=${FUZZ_RING_SRC:-native/ring.c}
guard_src=${FUZZ_GUARD_SRC:-native/guard.c}
cbpf_src=${FUZZ_CBPF_SRC:-native/cbpf.c}
json=${FUZZ_JSON:-$out/summary.jsonl}
cflags=(-std=gnu11 -O1 -g -fno-omit-frame-pointer
        -fsanitize=address,undefined -fno-sanitize-recover=all
        -Wall -Wextra -Werror -Inative)

mkdir -p "$out"
: > "$json"
gcc "${cflags[@]}" native/fuzz/fuzz_main.c native/fuzz/fuzz_ring.c "$ring_src" -o "$out/fuzz_ring"
gcc "${cflags[@]}" native/fuzz/fuzz_main.c native/fuzz/fuzz_guard.c "$guard_src" native/mcast.c -o "$out/fuzz_guard"
gcc "${cflags[@]}" native/fuzz/fuzz_main.c native/fuzz/fuzz_cbpf.c "$cbpf_src" -o "$out/fuzz_cbpf"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

# fuzzer -> share of SECONDS (percent) and steps per episode
declare -A share=([cons]=27 [prod]=18 [race]=15 [fds]=10 [guard]=22 [cbpf]=8)
declare -A steps=([cons]=2000 [prod]=2000 [race]=2000 [fds]=200 [guard]=20000 [cbpf]=20000)
failed=()
for f in cons prod race fds guard cbpf; do
    case " $only " in *" $f "*) ;; *) continue ;; esac
    t=$(awk -v s="$secs" -v p="${share[$f]}" 'BEGIN { printf "%.1f", s * p / 100 }')
    if [ "$f" = guard ] || [ "$f" = cbpf ]; then
        cmd=("$out/fuzz_$f" -s "$seed" -n "${steps[$f]}" -t "$t")
    else
        cmd=("$out/fuzz_ring" -m "$f" -s "$seed" -n "${steps[$f]}" -t "$t")
    fi
    echo "fuzz.sh: ${cmd[*]}"
    rc=0
    "${cmd[@]}" > "$out/$f.json" 2> "$out/$f.err" || rc=$?
    cat "$out/$f.err" >&2
    if [ "$rc" != 0 ]; then
        echo "fuzz.sh: $f FAILED (exit $rc)" >&2
        replay=$(grep -m1 '^replay: ' "$out/$f.err" || true)
        [ -n "$replay" ] && echo "fuzz.sh: $f $replay" >&2
        [ -z "$replay" ] && echo "fuzz.sh: $f replay: ${cmd[*]}" >&2
        printf '{"fuzzer": "%s", "failed": true, "exit": %s}\n' "$f" "$rc" >> "$json"
        failed+=("$f")
        continue
    fi
    cat "$out/$f.json" >> "$json"
    python3 - "$out/$f.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
name = d["fuzzer"] + (" " + d["mode"] if "mode" in d else "")
print(f"  {name}: {d['iterations']} iterations, {d['episodes']} seeds "
      f"from {d['seed']}, {d['seconds']} s", end="")
if "refused" in d:
    print(f", {d['accepted']} programs accepted, {d['runs']} runs ({d['matched']} matched), "
          f"{d['splits']} split runs")
    print("    refused: " + " ".join(f"{k.replace(' ', '_')}={v}" for k, v in d["refused"].items()))
elif "accepted" in d:
    print(f", {d['accepted']} records accepted, {d['produced']} produced, "
          f"{d['full']} full, {d['write_fd_eagain']} write_fd EAGAIN, "
          f"slowest call {d['max_call_ms']} ms")
    print("    violations: " + " ".join(f"{k}={v}" for k, v in d["violations"].items()))
else:
    print()
    print("    verdicts: " + " ".join(f"{k}={v}" for k, v in d["verdicts"].items()))
PY
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: findings in: ${failed[*]} (seed base $seed)" >&2
    exit 1
fi
echo "fuzz.sh: no findings (seed base $seed, $secs s)"
