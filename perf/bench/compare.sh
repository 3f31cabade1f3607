#!/usr/bin/env bash
# bandwidth_perf against rust-libp2p and raw quinn, on loopback, both sides
# on this machine, taking turns (ours, rust-libp2p, [libp2p-perf 0.3.0,]
# quinn, ours, …) so that drift in the machine's load hits all alike.
#
# Usage (from anywhere):
#   perf/bench/compare.sh            the full comparison (about 10 minutes on 2 cores)
#   QUICK=1 perf/bench/compare.sh    a smoke test: 64 MiB, 2 rounds, few iterations
#
# Environment (defaults in brackets):
#   SIZE            bytes per throughput run, each direction [1073741824 = 1 GiB]
#   RUNS            throughput rounds [5]
#   MODE_RUNS       rounds of the latency / connections / requests modes [3]
#   LATENCY_ITERATIONS      fresh connections per latency run [100]
#   CONNECTIONS_ITERATIONS  handshakes per connections run [1000]
#   REQUESTS_ITERATIONS     1-byte requests per requests run [10000]
#   IMPLS           which to run ["ours rust-libp2p libp2p-perf-0.3 quinn"]
#   TRANSPORT       quic-v1 or tcp (Noise, Yamux) [quic-v1]; with tcp only
#                   ours and rust-libp2p run (quinn and libp2p-perf 0.3 have
#                   no TCP here)
#   BENCH_TARGET    where the peers' binaries are built [perf/bench/target]
#   OUT             where results go [perf/bench/target/results/<date>]
#   NO_BUILD=1      use the binaries as built
#
# What it measures, per implementation (server and client are separate
# processes of the same implementation):
#   1. throughput of SIZE down and SIZE up (MiB/s, from the client's final
#      JSON line: bytes / timeSeconds);
#   2. CPU seconds per GiB: client (GNU time: user + sys) plus server
#      (/proc/<pid>/stat utime + stime during the run), over SIZE in GiB;
#   3. connect + 1-byte perf round trip over fresh connections (median, p99);
#   4. new connections per second over sequential handshakes;
#   5. sequential 1-byte perf requests per second on one connection;
#   6. the server's peak RSS (VmHWM) in each throughput run (a fresh server
#      process per run);
#   and, as a hint, UDP receive-buffer drops during each throughput run
#   (/proc/net/snmp RcvbufErrors, machine-wide).
# Each figure is reported as the median over rounds with min–max, and as the
# ratio ours / peer of the medians from this same run.
#
# Implementations:
#   ours             bandwidth_perf (the workspace), rust-libp2p perf's flags
#   rust-libp2p      perf/bench/rust-libp2p: rust-libp2p 0.57 (libp2p-quic,
#                    libp2p-stream, tokio), all modes
#   libp2p-perf-0.3  rust-libp2p's own `perf` binary (crates.io libp2p-perf
#                    0.3.0, libp2p 0.53): throughput only (it has no modes)
#   quinn            perf/bench/quinn: raw quinn 0.11, no libp2p, all modes
#   before           a bandwidth_perf built from an earlier commit, named by
#                    BEFORE_BIN (not built here), to check a change against
#                    the code before it in the same sitting, all modes
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH=$ROOT/perf/bench
TARGET=${BENCH_TARGET:-$BENCH/target}
WS_TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

if [[ -n ${QUICK:-} ]]; then
    : "${SIZE:=67108864}" "${RUNS:=2}" "${MODE_RUNS:=1}"
    : "${LATENCY_ITERATIONS:=20}" "${CONNECTIONS_ITERATIONS:=50}" "${REQUESTS_ITERATIONS:=500}"
fi
SIZE=${SIZE:-1073741824}
RUNS=${RUNS:-5}
MODE_RUNS=${MODE_RUNS:-3}
LATENCY_ITERATIONS=${LATENCY_ITERATIONS:-100}
CONNECTIONS_ITERATIONS=${CONNECTIONS_ITERATIONS:-1000}
REQUESTS_ITERATIONS=${REQUESTS_ITERATIONS:-10000}
TRANSPORT=${TRANSPORT:-quic-v1}
if [[ $TRANSPORT == tcp ]]; then
    IMPLS=${IMPLS:-"ours rust-libp2p"}
else
    IMPLS=${IMPLS:-"ours rust-libp2p libp2p-perf-0.3 quinn"}
fi
OUT=${OUT:-$TARGET/results/$(date +%Y%m%d-%H%M%S)}
# A bound on every client run, against a hung process (not a speed check).
CLIENT_TIMEOUT=600

for tool in jq python3 ss timeout; do
    command -v "$tool" >/dev/null || { echo "compare.sh: needs $tool" >&2; exit 1; }
done
[[ -x /usr/bin/time ]] || { echo "compare.sh: needs GNU time (apt-get install time)" >&2; exit 1; }

declare -A BIN=(
    [ours]=$WS_TARGET/release/bandwidth_perf
    [rust-libp2p]=$TARGET/release/rust-libp2p-bench
    [libp2p-perf-0.3]=$TARGET/libp2p-perf-0.3.0/bin/perf
    [quinn]=$TARGET/release/quinn-bench
    [before]=${BEFORE_BIN:-}
)

build() {
    echo "== building (release)" >&2
    (cd "$ROOT" && cargo build --release -p bandwidth_perf)
    for crate in rust-libp2p quinn; do
        cargo build --release --manifest-path "$BENCH/$crate/Cargo.toml" --target-dir "$TARGET"
    done
    if [[ " $IMPLS " == *" libp2p-perf-0.3 "* && ! -x ${BIN[libp2p-perf-0.3]} ]]; then
        # Its published lock file pins `time` 0.3.23, which no longer builds
        # with current rustc; resolved afresh it does.
        cargo install libp2p-perf --version 0.3.0 --root "$TARGET/libp2p-perf-0.3.0" \
            --target-dir "$TARGET" ||
            echo "== libp2p-perf 0.3.0 does not build here: left out" >&2
    fi
}
[[ -n ${NO_BUILD:-} ]] || build

impls=()
for impl in $IMPLS; do
    if [[ -x ${BIN[$impl]:-} ]]; then impls+=("$impl"); else echo "== no binary for $impl: left out" >&2; fi
done

mkdir -p "$OUT"
RAW=$OUT/raw.tsv
printf 'impl\tmetric\tround\tvalue\tload1\n' >"$RAW"
CLK_TCK=$(getconf CLK_TCK)
LOG=$OUT/log
mkdir -p "$LOG"

load1() { cut -d' ' -f1 /proc/loadavg; }
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$(load1)" >>"$RAW"; }

{
    echo "date: $(date -Is)"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "kernel: $(uname -r)"
    echo "rustc: $(rustc --version)"
    echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(
        [[ -n $(git -C "$ROOT" status --porcelain -- swarm protocols perf 2>/dev/null) ]] && echo ' + uncommitted changes')"
    echo "sysctl: net.core.rmem_max=$(cat /proc/sys/net/core/rmem_max) net.core.wmem_max=$(cat /proc/sys/net/core/wmem_max)"
    echo "transport: $TRANSPORT"
    echo "size: $SIZE bytes; runs: $RUNS; mode runs: $MODE_RUNS"
    echo "iterations: latency $LATENCY_ITERATIONS, connections $CONNECTIONS_ITERATIONS, requests $REQUESTS_ITERATIONS"
    echo "implementations: ${impls[*]}"
    echo "load at start: $(cat /proc/loadavg)"
} | tee "$OUT/machine.txt" >&2

SERVER_PID=
stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
trap stop_server EXIT

# A port on 127.0.0.1 that nothing listens on, UDP or TCP (the servers
# listen on both with one port number).
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 30000))
        [[ -z $(ss -Hnlu "sport = :$port") && -z $(ss -Hnlt "sport = :$port") ]] && { echo "$port"; return; }
    done
}
# Whether the server listens for $TRANSPORT on $PORT.
listening() {
    if [[ $TRANSPORT == tcp ]]; then
        [[ -n $(ss -Hnlt "sport = :$PORT") ]]
    else
        [[ -n $(ss -Hnlu "sport = :$PORT") ]]
    fi
}

# start_server IMPL TAG: a fresh server process; sets SERVER_PID, PORT.
start_server() {
    local impl=$1 tag=$2
    PORT=$(free_port)
    "${BIN[$impl]}" --run-server --server-address "127.0.0.1:$PORT" \
        </dev/null >"$LOG/$tag.server.out" 2>"$LOG/$tag.server.err" &
    SERVER_PID=$!
    for _ in $(seq 200); do
        listening && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "compare.sh: the $impl server did not listen (see $LOG/$tag.server.err)" >&2
    exit 1
}

# UDP datagrams the kernel dropped for want of receive-buffer room (all
# sockets on this machine: other jobs' drops count too, so it is a hint).
udp_drops() { awk '/^Udp:/ { if (++n == 2) print $6 }' /proc/net/snmp; }
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

# client IMPL TAG ARGS...: run a client against the server on $PORT.
client() {
    local impl=$1 tag=$2
    shift 2
    if ! timeout "$CLIENT_TIMEOUT" /usr/bin/time -f '%e %U %S %M' -o "$LOG/$tag.time" \
        "${BIN[$impl]}" --server-address "127.0.0.1:$PORT" --transport "$TRANSPORT" "$@" \
        </dev/null >"$LOG/$tag.out" 2>"$LOG/$tag.err"; then
        echo "compare.sh: $impl client failed ($tag):" >&2
        tail -5 "$LOG/$tag.err" >&2
        exit 1
    fi
}

# transfer IMPL ROUND DIRECTION: one SIZE run down or up.
transfer() {
    local impl=$1 round=$2 dir=$3 tag="$1.$3.$2" up=0 down=0
    if [[ $dir == down ]]; then down=$SIZE; else up=$SIZE; fi
    start_server "$impl" "$tag"
    local before drops_before
    before=$(cpu_ticks "$SERVER_PID")
    drops_before=$(udp_drops)
    client "$impl" "$tag" --upload-bytes "$up" --download-bytes "$down"
    local after hwm drops
    after=$(cpu_ticks "$SERVER_PID")
    drops=$(($(udp_drops) - drops_before))
    hwm=$(hwm_kib "$SERVER_PID")
    stop_server
    local secs bytes
    secs=$(jq -r 'select(.type == "final") | .timeSeconds' "$LOG/$tag.out")
    bytes=$(jq -r 'select(.type == "final") | .uploadBytes + .downloadBytes' "$LOG/$tag.out")
    if [[ $bytes != "$SIZE" ]]; then
        echo "compare.sh: $impl moved $bytes bytes, not $SIZE ($tag)" >&2
        exit 1
    fi
    read -r _ cu cs _ <"$LOG/$tag.time"
    local mibs cpu
    mibs=$(python3 -c "print($SIZE / 2**20 / $secs)")
    cpu=$(python3 -c "print(($cu + $cs + ($after - $before) / $CLK_TCK) / ($SIZE / 2**30))")
    record "$impl" "${dir}_mib_s" "$round" "$mibs"
    record "$impl" "${dir}_cpu_s_per_gib" "$round" "$cpu"
    record "$impl" "${dir}_server_hwm_mib" "$round" "$(python3 -c "print($hwm / 1024)")"
    record "$impl" "${dir}_udp_drops" "$round" "$drops"
    printf '%-16s %-4s round %s: %8.1f MiB/s, %.2f CPU s/GiB, server peak RSS %s KiB, %s UDP drops (load %s)\n' \
        "$impl" "$dir" "$round" "$mibs" "$cpu" "$hwm" "$drops" "$(load1)" >&2
}

# measure IMPL ROUND MODE ITERATIONS: one run of a measuring mode.
measure() {
    local impl=$1 round=$2 mode=$3 n=$4 tag="$1.$3.$2"
    start_server "$impl" "$tag"
    client "$impl" "$tag" --mode "$mode" --iterations "$n"
    stop_server
    local line
    line=$(jq -c "select(.type == \"$mode\")" "$LOG/$tag.out")
    if [[ $(jq -r .iterations <<<"$line") != "$n" ]]; then
        echo "compare.sh: $impl $mode printed no result ($tag)" >&2
        exit 1
    fi
    case $mode in
    latency)
        record "$impl" latency_median_us "$round" "$(jq -r '.medianSeconds * 1e6' <<<"$line")"
        record "$impl" latency_p99_us "$round" "$(jq -r '.p99Seconds * 1e6' <<<"$line")"
        ;;
    connections) record "$impl" connections_per_s "$round" "$(jq -r .perSecond <<<"$line")" ;;
    requests) record "$impl" requests_per_s "$round" "$(jq -r .perSecond <<<"$line")" ;;
    esac
    echo "$impl $mode round $round: $line (load $(load1))" >&2
}

echo "== 1, 2, 6: throughput, CPU, server RSS ($SIZE bytes each way, $RUNS rounds)" >&2
for round in $(seq "$RUNS"); do
    for dir in down up; do
        for impl in "${impls[@]}"; do transfer "$impl" "$round" "$dir"; done
    done
done

mode_impls=()
for impl in "${impls[@]}"; do [[ $impl == libp2p-perf-0.3 ]] || mode_impls+=("$impl"); done
echo "== 3, 4, 5: latency, connections, requests ($MODE_RUNS rounds)" >&2
for round in $(seq "$MODE_RUNS"); do
    for impl in "${mode_impls[@]}"; do measure "$impl" "$round" latency "$LATENCY_ITERATIONS"; done
    for impl in "${mode_impls[@]}"; do measure "$impl" "$round" connections "$CONNECTIONS_ITERATIONS"; done
    for impl in "${mode_impls[@]}"; do measure "$impl" "$round" requests "$REQUESTS_ITERATIONS"; done
done

echo "load at end: $(cat /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2
python3 "$BENCH/summarize.py" "$RAW" | tee "$OUT/summary.md"
echo "== raw results in $OUT" >&2
