#!/usr/bin/env bash
# Kademlia lookups on real loopback sockets, ours against rust-libp2p 0.57 kad
# (issue 13): the same N-node network in one process each, then sequential
# get_closest_peers of random keys; median / p99 lookup latency and CPU
# seconds per 1,000 lookups (getrusage over the lookup phase only).
#
# Usage (from anywhere):
#   perf/bench/kad_compare.sh                   100 nodes, 1,000 lookups, 3 rounds
#   OURS_BIN=path/to/ours perf/bench/kad_compare.sh   also run ours, interleaved
#
# Environment (defaults in brackets):
#   NODES      nodes per network [100]
#   LOOKUPS    timed lookups per run [1000]
#   SEED       seed of round 1; round r uses SEED + r - 1, the same for both
#              implementations, so both see the same origins and keys [1]
#   ROUNDS     runs per implementation, taking turns (ours, rust-libp2p, ours, …) [3]
#   OURS_BIN   our benchmark binary (see "ours" below); skipped if unset or absent
#   OUT        where results go [perf/bench/target/results/kad-<date>]
#   NO_BUILD=1 use rust_kad_bench as built
#
# rust-libp2p: swarm/interop-peer/src/bin/rust_kad_bench.rs (crate
# rust-libp2p-peer, built in the workspace with its target dir). Its header
# says exactly what is set up and what is measured.
#
# ours: OURS_BIN must take `--nodes N --lookups L --seed S`, do the same
# (N nodes in one process on 127.0.0.1 QUIC, server mode, each starting with
# 3 random seeds and bootstrapping until tables stop growing, no periodic
# refresh during the lookups, lookups one at a time from random nodes to
# random 32-byte keys, CPU by getrusage(RUSAGE_SELF) over the lookup phase)
# and print one JSON line on stdout with at least
#   {"impl":..,"nodes":..,"lookups":..,"ok":..,"latency_ms_p50":..,
#    "latency_ms_p99":..,"cpu_s":..,"cpu_s_per_1000":..,"wall_s":..}
# (progress on stderr).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH=$ROOT/perf/bench
WS_TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
NODES=${NODES:-100}
LOOKUPS=${LOOKUPS:-1000}
SEED=${SEED:-1}
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-$BENCH/target/results/kad-$(date +%Y%m%d-%H%M%S)}
# A bound on every run, against a hung process (not a speed check).
RUN_TIMEOUT=900

for tool in python3 timeout; do
    command -v "$tool" >/dev/null || { echo "kad_compare.sh: needs $tool" >&2; exit 1; }
done

RUST_BIN=$WS_TARGET/release/rust_kad_bench
if [[ -z ${NO_BUILD:-} ]]; then
    echo "== building rust_kad_bench (release)" >&2
    (cd "$ROOT" && cargo build --release -p rust-libp2p-peer --bin rust_kad_bench)
fi
[[ -x $RUST_BIN ]] || { echo "kad_compare.sh: no $RUST_BIN" >&2; exit 1; }

impls=()
# ---------------------------------------------------------------------------
# OURS: our Kademlia's benchmark binary, given as OURS_BIN (not built here).
# Skipped, with a message, until it exists.
# ---------------------------------------------------------------------------
if [[ -n ${OURS_BIN:-} && -x ${OURS_BIN:-} ]]; then
    impls+=(ours)
else
    if [[ -n ${OURS_BIN:-} ]]; then why="$OURS_BIN is not executable"; else why="OURS_BIN is unset"; fi
    echo "== ours: skipped ($why; set OURS_BIN to our kad benchmark binary)" >&2
fi
impls+=(rust-libp2p)
declare -A BIN=([ours]=${OURS_BIN:-} [rust-libp2p]=$RUST_BIN)

mkdir -p "$OUT/log"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
{
    echo "date: $(date -Is)"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "kernel: $(uname -r)"
    echo "rustc: $(rustc --version)"
    echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "nodes: $NODES; lookups: $LOOKUPS; seed: $SEED; rounds: $ROUNDS"
    echo "implementations: ${impls[*]}"
    echo "load at start: $(cat /proc/loadavg)"
} | tee "$OUT/machine.txt" >&2

for round in $(seq "$ROUNDS"); do
    seed=$((SEED + round - 1))
    for impl in "${impls[@]}"; do
        tag=$impl.$round
        echo "== $impl round $round (seed $seed, load $(cut -d' ' -f1 /proc/loadavg))" >&2
        if ! timeout "$RUN_TIMEOUT" "${BIN[$impl]}" --nodes "$NODES" --lookups "$LOOKUPS" --seed "$seed" \
            </dev/null >"$OUT/log/$tag.out" 2>"$OUT/log/$tag.err"; then
            echo "kad_compare.sh: $impl failed in round $round:" >&2
            tail -5 "$OUT/log/$tag.err" >&2
            exit 1
        fi
        line=$(grep -m1 '^{' "$OUT/log/$tag.out" || true)
        [[ -n $line ]] || { echo "kad_compare.sh: $impl printed no JSON line ($tag)" >&2; exit 1; }
        echo "$line" >&2
        python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["bench_impl"]=sys.argv[2]; d["round"]=int(sys.argv[3]); d["load1"]=float(sys.argv[4]); print(json.dumps(d))' \
            "$line" "$impl" "$round" "$(cut -d' ' -f1 /proc/loadavg)" >>"$RESULTS"
    done
done
echo "load at end: $(cat /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2

python3 - "$RESULTS" <<'EOF' | tee "$OUT/summary.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
impls = list(dict.fromkeys(r["bench_impl"] for r in rows))
metrics = [("ok", "ok lookups"), ("latency_ms_p50", "latency p50 (ms)"),
           ("latency_ms_p99", "latency p99 (ms)"), ("cpu_s_per_1000", "CPU s / 1,000 lookups"),
           ("wall_s", "wall (s)"), ("exact", "lookups returning exactly the k closest"),
           ("requests_per_lookup", "FIND_NODE requests per lookup"),
           ("idle_cpu_s_per_s", "idle CPU s / s before the lookups")]
def cell(impl, key):
    vals = [r[key] for r in rows if r["bench_impl"] == impl and key in r]
    if not vals:
        return None, "–"
    m = statistics.median(vals)
    return m, f"{m:g} ({min(vals):g}–{max(vals):g})" if len(vals) > 1 else f"{m:g}"
head = "| metric | " + " | ".join(impls) + (" | ours ÷ rust-libp2p |" if "ours" in impls else " |")
print(head)
print("|" + "---|" * (len(impls) + 1 + ("ours" in impls)))
for key, name in metrics:
    cells = [cell(i, key) for i in impls]
    line = f"| {name} | " + " | ".join(c[1] for c in cells) + " |"
    if "ours" in impls:
        o, _ = cell("ours", key)
        r, _ = cell("rust-libp2p", key)
        line += f" {o / r:.2f} |" if o is not None and r else " – |"
    print(line)
print(f"\nmedian over rounds (min–max); {len(rows)} runs")
EOF
echo "== raw results in $OUT" >&2
