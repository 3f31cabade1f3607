#!/usr/bin/env bash
# Gossipsub on real loopback sockets, ours against rust-libp2p 0.57 gossipsub
# (issue 14): the same N-node network in one process each (random connected
# topology, DEGREE peers per node, one topic), RATE messages/s of SIZE bytes
# for DURATION_S seconds; delivery rate, latency p50/p99, CPU seconds of the
# publishing span (getrusage), peak RSS. Then, once per implementation, the
# stalled-peer run: one extra peer subscribes and stops reading; the
# publisher's process RSS over time.
#
# Usage (from anywhere):
#   perf/bench/gossip_compare.sh                      50 nodes, 1,000 msg/s of 1 KiB, 30 s, 1 round
#   DURATION_S=10 perf/bench/gossip_compare.sh        shorter, for a loaded machine
#   OURS_BIN= perf/bench/gossip_compare.sh            rust-libp2p only (ours skipped)
#
# Environment (defaults in brackets):
#   NODES       nodes per network [50]
#   DEGREE      connections per node [8]
#   RATE        messages per second over all publishers [1000]
#   SIZE        message size in bytes [1024]
#   DURATION_S  publishing time in seconds [30]
#   SEED        seed of round 1; round r uses SEED + r - 1, the same for both
#               implementations (identities and topology) [1]
#   ROUNDS      throughput runs per implementation, taking turns [1]
#   STALLED=0   skip the stalled-peer runs [1 = run them]
#   STALLED_NODES, STALLED_DEGREE, STALLED_DURATION_S  network of the stalled
#               run [5, 4, 30]: small so that node 0 really publishes STALLED_RATE
#               messages/s on 2 cores (the stalled peer's 10 MB QUIC stream
#               window fills after ~10 s at 1 MB/s; a 50-node network here
#               publishes ~100/s from node 0 and never gets there)
#   STALLED_RATE  node 0's publish rate in the stalled run [1000]: its own
#               default, not RATE, because a RATE lowered for the 50-node
#               runs (100/s sends ~3 MB in 30 s) never fills the window
#   OURS_BIN    our benchmark binary (see "ours" below) [target/release/
#               gossip_bench, built here]; set to another path to run that
#               one as it is (not built), set empty to skip ours
#   OUT         where results go [perf/bench/target/results/gossip-<date>]
#   NO_BUILD=1  use both binaries as built
#
# rust-libp2p: swarm/interop-peer/src/bin/rust_gossip_bench.rs (crate
# rust-libp2p-peer, built in the workspace with its target dir). Its header
# says exactly what is set up and what is measured; publishers rotate over
# all nodes (message k from node k mod N), each message starts with its
# sequence number and send time (u64 LE each, same process clock).
#
# ours: perf/src/bin/gossip_bench (package bandwidth_perf), whose header
# says what it sets up and measures. Any OURS_BIN must take `--nodes N --degree D --rate R --size B
# --duration-s S --seed X [--stalled]`, do the same (N nodes in one process
# on 127.0.0.1 QUIC, the same topology rule, default gossipsub settings:
# StrictSign, D = 6, heartbeat 1 s, flood publish; message k published by
# node k mod N at t0 + k / R; a stalled peer in a separate process dialing
# node 0, node 0 publishing everything) and print on stdout one JSON line
#   {"impl":..,"nodes":..,"messages":..,"delivery_rate":..,"latency_ms_p50":..,
#    "latency_ms_p99":..,"cpu_s":..,"peak_rss_bytes":..,"wall_s":..}
# plus, with --stalled, lines {"mode":"stalled","t_s":..,"rss_bytes":..} before
# it (progress on stderr).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH=$ROOT/perf/bench
WS_TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
NODES=${NODES:-50}
DEGREE=${DEGREE:-8}
RATE=${RATE:-1000}
SIZE=${SIZE:-1024}
DURATION_S=${DURATION_S:-30}
SEED=${SEED:-1}
ROUNDS=${ROUNDS:-1}
STALLED=${STALLED:-1}
STALLED_NODES=${STALLED_NODES:-5}
STALLED_DEGREE=${STALLED_DEGREE:-4}
STALLED_DURATION_S=${STALLED_DURATION_S:-30}
STALLED_RATE=${STALLED_RATE:-1000}
OUT=${OUT:-$BENCH/target/results/gossip-$(date +%Y%m%d-%H%M%S)}
# A bound on every run, against a hung process (not a speed check).
RUN_TIMEOUT=$((DURATION_S + STALLED_DURATION_S + 300))

for tool in python3 timeout; do
    command -v "$tool" >/dev/null || { echo "gossip_compare.sh: needs $tool" >&2; exit 1; }
done

RUST_BIN=$WS_TARGET/release/rust_gossip_bench
if [[ -z ${NO_BUILD:-} ]]; then
    echo "== building rust_gossip_bench (release)" >&2
    (cd "$ROOT" && cargo build --release -p rust-libp2p-peer --bin rust_gossip_bench)
fi
[[ -x $RUST_BIN ]] || { echo "gossip_compare.sh: no $RUST_BIN" >&2; exit 1; }

impls=()
# ---------------------------------------------------------------------------
# OURS: gossip_bench, built here unless OURS_BIN names another binary (run
# as it is) or is set empty (ours skipped, with a message). A failed build
# stops the script: a comparison without ours would pass for one by mistake.
# ---------------------------------------------------------------------------
OURS_DEFAULT=$WS_TARGET/release/gossip_bench
OURS_BIN=${OURS_BIN-$OURS_DEFAULT}
if [[ $OURS_BIN == "$OURS_DEFAULT" && -z ${NO_BUILD:-} ]]; then
    echo "== building gossip_bench (release)" >&2
    (cd "$ROOT" && cargo build --release -p bandwidth_perf --bin gossip_bench)
fi
if [[ -n $OURS_BIN && -x $OURS_BIN ]]; then
    impls+=(ours)
else
    if [[ -n $OURS_BIN ]]; then why="$OURS_BIN is not executable"; else why="OURS_BIN is empty"; fi
    echo "== ours: skipped ($why)" >&2
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
    echo "nodes: $NODES; degree: $DEGREE; rate: $RATE/s; size: $SIZE B; duration: ${DURATION_S} s; seed: $SEED; rounds: $ROUNDS"
    echo "stalled: $STALLED ($STALLED_NODES nodes, degree $STALLED_DEGREE, $STALLED_RATE/s, ${STALLED_DURATION_S} s)"
    echo "implementations: ${impls[*]}"
    echo "load at start: $(cat /proc/loadavg)"
} | tee "$OUT/machine.txt" >&2

# run IMPL TAG SEED NODES DEGREE DURATION_S RATE [--stalled]: one run; its
# summary line goes to RESULTS.
run() {
    local impl=$1 tag=$2 seed=$3 nodes=$4 degree=$5 duration=$6 rate=$7
    shift 7
    echo "== $impl $tag (seed $seed, $nodes nodes, $rate/s, load $(cut -d' ' -f1 /proc/loadavg))" >&2
    if ! timeout "$RUN_TIMEOUT" "${BIN[$impl]}" --nodes "$nodes" --degree "$degree" --rate "$rate" \
        --size "$SIZE" --duration-s "$duration" --seed "$seed" "$@" \
        </dev/null >"$OUT/log/$impl.$tag.out" 2>"$OUT/log/$impl.$tag.err"; then
        echo "gossip_compare.sh: $impl failed ($tag):" >&2
        tail -5 "$OUT/log/$impl.$tag.err" >&2
        exit 1
    fi
    # The summary is the last JSON line without "mode" (stalled mode prints
    # RSS lines before it).
    local line
    line=$(grep '^{' "$OUT/log/$impl.$tag.out" | grep -v '"mode"' | tail -1 || true)
    [[ -n $line ]] || { echo "gossip_compare.sh: $impl printed no JSON line ($tag)" >&2; exit 1; }
    echo "$line" >&2
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["bench_impl"]=sys.argv[2]; d["run"]=sys.argv[3]; d["load1"]=float(sys.argv[4]); print(json.dumps(d))' \
        "$line" "$impl" "$tag" "$(cut -d' ' -f1 /proc/loadavg)" >>"$RESULTS"
}

for round in $(seq "$ROUNDS"); do
    for impl in "${impls[@]}"; do
        run "$impl" "round$round" $((SEED + round - 1)) "$NODES" "$DEGREE" "$DURATION_S" "$RATE"
    done
done
if [[ $STALLED == 1 ]]; then
    for impl in "${impls[@]}"; do
        run "$impl" stalled "$SEED" "$STALLED_NODES" "$STALLED_DEGREE" "$STALLED_DURATION_S" \
            "$STALLED_RATE" --stalled
    done
fi
echo "load at end: $(cat /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2

python3 - "$RESULTS" "$OUT/log" <<'EOF' | tee "$OUT/summary.md"
import glob, json, os, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
normal = [r for r in rows if not r.get("stalled")]
impls = list(dict.fromkeys(r["bench_impl"] for r in rows))
metrics = [("messages", "messages published"), ("delivery_rate", "delivery rate"),
           ("latency_ms_p50", "latency p50 (ms)"), ("latency_ms_p99", "latency p99 (ms)"),
           ("cpu_s", "CPU s (publishing span)"), ("peak_rss_bytes", "peak RSS (bytes)"),
           ("wall_s", "wall (s)")]
def cell(impl, key):
    vals = [r[key] for r in normal if r["bench_impl"] == impl and key in r]
    if not vals:
        return None, "–"
    m = statistics.median(vals)
    return m, f"{m:g} ({min(vals):g}–{max(vals):g})" if len(vals) > 1 else f"{m:g}"
if normal:
    print("| metric | " + " | ".join(impls) + (" | ours ÷ rust-libp2p |" if "ours" in impls else " |"))
    print("|" + "---|" * (len(impls) + 1 + ("ours" in impls)))
    for key, name in metrics:
        cells = [cell(i, key) for i in impls]
        line = f"| {name} | " + " | ".join(c[1] for c in cells) + " |"
        if "ours" in impls:
            o, _ = cell("ours", key)
            r, _ = cell("rust-libp2p", key)
            line += f" {o / r:.2f} |" if o is not None and r else " – |"
        print(line)
    print(f"\nmedian over rounds (min–max); {len(normal)} runs")
for impl in impls:
    path = os.path.join(sys.argv[2], f"{impl}.stalled.out")
    if not os.path.exists(path):
        continue
    pts = [json.loads(l) for l in open(path) if l.startswith("{") and '"mode"' in l]
    if not pts:
        continue
    print(f"\nstalled peer, {impl}: process RSS (MiB) over time")
    print("| t (s) | RSS (MiB) | published |")
    print("|---|---|---|")
    for p in pts:
        print(f"| {p['t_s']:g} | {p['rss_bytes'] / 2**20:.1f} | {p.get('published', '–')} |")
EOF
echo "== raw results in $OUT" >&2
