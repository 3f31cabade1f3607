#!/usr/bin/env bash
# Real hosts for the swarm: N Linux network namespaces joined by a bridge,
# each with its own address, so that swarms talk over real UDP sockets as
# separate hosts. The deterministic simulator's figures (swarm::virtual_net)
# can be compared with these.
#
# Layout, for tag T (unique per run) and hosts 1..N:
#   swnet-T-sw   the "switch": bridge br0 and one veth end h<i> per host
#   swnet-T-<i>  host i: lo, and eth0 = 10.77.<x>.<i>/24 (x derived from T)
# Nothing is added to the root namespace: the veth pairs are created
# directly between the switch and the hosts, and no namespace has a default
# route, so nothing can be sent anywhere but these namespaces. `down` kills
# every process still inside them and deletes exactly the namespaces named
# swnet-T-*; deleting a namespace deletes its links.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: hosts.sh COMMAND ...   (as root; needs iproute2)

Commands:
  up N               create N hosts (and the switch); prints the tag
  down TAG           kill the processes in, and delete, the namespaces of TAG
  exec TAG I CMD...  run CMD in host I (1..N) of TAG
  list               list the namespaces any run of this script left behind
  perf N BYTES       N hosts (N even): odd hosts run 'bandwidth_perf server',
                     each even host downloads BYTES from the host before it;
                     one JSON line per pair, then a summary line
  ping N K COUNT     N hosts run 'bandwidth_perf server' (which answers ping
                     and identify); each host dials K random others with the
                     'ping' tool and pings COUNT times; one JSON summary line:
                     connections made, handshakes failed, RTT p50/p99 in ms

'perf' and 'ping' create their own hosts and always remove them, and every
process they started, when they exit (success, failure, Ctrl-C, SIGTERM).
Sizes: a number, optionally with KiB, MiB or GiB (as bandwidth_perf reads).

Environment:
  SWNET_TAG        tag for up/perf/ping ([a-z0-9], at most 12 characters;
                   default: random). Namespaces are named swnet-<tag>-...
  BANDWIDTH_PERF   the bandwidth_perf binary (default: release build, then
                   debug build under CARGO_TARGET_DIR or ./target, then PATH)
  PING_BIN         the 'ping' binary of the protocols package (same search)
  SWNET_TIMEOUT    seconds allowed for each client or ping process (default
                   300); servers get 30 s to start listening
  SWNET_PING_INTERVAL  seconds between pings (default 0.2)
  SWNET_SEED       seed for the choice of peers in 'ping' (default: random)
  SWNET_KEEP_LOGS  1: keep the per-process logs (their directory is printed)

Example:
  cargo build --release -p bandwidth_perf -p protocols
  sudo perf/netns/hosts.sh perf 8 1GiB
  sudo perf/netns/hosts.sh ping 8 3 10
EOF
}

die() {
  echo "hosts.sh: $*" >&2
  exit 1
}

# shellcheck source=perf/netns/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
KEEP_LOGS_VAR=SWNET_KEEP_LOGS

PREFIX=swnet
PORT=4001

# --- naming -----------------------------------------------------------------

new_tag() {
  if [[ -n "${SWNET_TAG:-}" ]]; then
    [[ "$SWNET_TAG" =~ ^[a-z0-9]{1,12}$ ]] || die "SWNET_TAG must be 1-12 characters of [a-z0-9]"
    echo "$SWNET_TAG"
  else
    printf '%x%04x\n' "$$" "$RANDOM"
  fi
}

check_tag() {
  [[ "$1" =~ ^[a-z0-9]{1,12}$ ]] || die "bad tag '$1'"
}

switch_ns() { echo "$PREFIX-$1-sw"; }
host_ns() { echo "$PREFIX-$1-$2"; }

# The third octet of the hosts' /24, from the tag (only for readability in
# logs: the namespaces of different runs never see each other).
subnet() {
  local sum
  sum=$(printf '%s' "$1" | cksum | cut -d' ' -f1)
  echo "10.77.$((sum % 256))"
}

host_ip() { echo "$(subnet "$1").$2"; }

# Namespaces of this tag that exist now.
tag_namespaces() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$PREFIX-$1-(sw|[0-9]+)\$" || true
}

# --- up / down --------------------------------------------------------------

up() {
  local tag=$1 n=$2 i sw ns
  [[ "$n" =~ ^[0-9]+$ ]] && ((n >= 1 && n <= 250)) || die "N must be 1..250, got '$n'"
  [[ -z "$(tag_namespaces "$tag")" ]] || die "namespaces of tag $tag exist already"
  sw=$(switch_ns "$tag")
  ip netns add "$sw"
  ip -n "$sw" link set lo up
  ip -n "$sw" link add br0 type bridge
  ip -n "$sw" link set br0 up
  for ((i = 1; i <= n; i++)); do
    ns=$(host_ns "$tag" "$i")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # Both ends are created in namespaces of ours, never in the root one.
    ip -n "$sw" link add "h$i" type veth peer name eth0 netns "$ns"
    ip -n "$sw" link set "h$i" master br0
    ip -n "$sw" link set "h$i" up
    ip -n "$ns" addr add "$(host_ip "$tag" "$i")/24" dev eth0
    ip -n "$ns" link set eth0 up
  done
}

down() {
  local namespaces
  namespaces=$(tag_namespaces "$1")
  # shellcheck disable=SC2086 # one namespace name per word
  remove_namespaces $namespaces
}

# --- scenarios: shared parts ------------------------------------------------

find_bin() {
  find_workspace_bin "$1" "build it (cargo build --release -p bandwidth_perf -p protocols) or set its variable"
}

FAILED=0

start_scenario() {
  start_run
  echo "hosts.sh: tag $TAG, hosts $(subnet "$TAG").1-$1, logs $LOGS" >&2
  up "$TAG" "$1"
}

# Start 'bandwidth_perf server' in host i, listening on its address only.
start_server() {
  local i=$1
  ip netns exec "$(host_ns "$TAG" "$i")" env LISTEN_IP="$(host_ip "$TAG" "$i")" PORT=$PORT \
    SECRET_KEY= RUST_LOG=warn "$BANDWIDTH_PERF" server \
    </dev/null >"$LOGS/server-$i.out" 2>"$LOGS/server-$i.err" &
  echo $! >"$LOGS/server-$i.pid"
}

# Wait (at most 30 s) until server i prints its address; print its
# /p2p/... multiaddr.
server_addr() {
  local i=$1 line pid
  pid=$(cat "$LOGS/server-$i.pid")
  for _ in $(seq 300); do
    line=$(grep -s -m1 '^Listening on ' "$LOGS/server-$i.err" || true)
    if [[ -n "$line" ]]; then
      echo "${line#Listening on }"
      return
    fi
    kill -0 "$pid" 2>/dev/null || die "server $i exited: $(tail -n 3 "$LOGS/server-$i.err")"
    sleep 0.1
  done
  die "server $i did not listen within 30 s"
}

# Escape a string for a JSON value (quotes, backslashes, control chars).
json_string() {
  printf '%s' "$1" | tr '\n\t\r' '   ' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$/"/'
}

# --- perf N BYTES -------------------------------------------------------------

scenario_perf() {
  local n=$1 bytes=$2 p s c addr peer pid line t down_bytes rc err
  [[ "$n" =~ ^[0-9]+$ ]] && ((n >= 2 && n % 2 == 0)) || die "perf: N must be even and at least 2"
  BANDWIDTH_PERF=${BANDWIDTH_PERF:-$(find_bin bandwidth_perf)}
  start_scenario "$n"
  for ((s = 1; s <= n; s += 2)); do start_server "$s"; done
  for ((p = 1; p <= n / 2; p++)); do
    s=$((2 * p - 1))
    c=$((2 * p))
    addr=$(server_addr "$s")
    peer=${addr##*/p2p/}
    timeout -k 2 "$CLIENT_TIMEOUT" ip netns exec "$(host_ns "$TAG" "$c")" env \
      RESPONDER_IP="$(host_ip "$TAG" "$s")" RESPONDER_PORT=$PORT RESPONDER_KEY="$peer" \
      BYTE_SIZE="$bytes" UPLOAD_SIZE=0 RUST_LOG=warn "$BANDWIDTH_PERF" client \
      </dev/null >"$LOGS/client-$c.out" 2>"$LOGS/client-$c.err" &
    echo $! >"$LOGS/client-$c.pid"
  done
  local total_bytes=0 slowest=0
  for ((p = 1; p <= n / 2; p++)); do
    s=$((2 * p - 1))
    c=$((2 * p))
    pid=$(cat "$LOGS/client-$c.pid")
    rc=0
    wait "$pid" || rc=$?
    line=$(grep '"type":"final"' "$LOGS/client-$c.out" | tail -n 1 || true)
    if ((rc == 0)) && [[ -n "$line" ]]; then
      t=$(sed -E 's/.*"timeSeconds":([0-9.eE+-]+).*/\1/' <<<"$line")
      down_bytes=$(sed -E 's/.*"downloadBytes":([0-9]+).*/\1/' <<<"$line")
      total_bytes=$((total_bytes + down_bytes))
      slowest=$(awk -v a="$slowest" -v b="$t" 'BEGIN { print (b > a ? b : a) }')
      awk -v p="$p" -v s="$(host_ip "$TAG" "$s")" -v c="$(host_ip "$TAG" "$c")" \
        -v b="$down_bytes" -v t="$t" 'BEGIN {
          printf "{\"type\":\"pair\",\"scenario\":\"perf\",\"pair\":%d,\"server\":\"%s\",\"client\":\"%s\",\"ok\":true,\"downloadBytes\":%.0f,\"timeSeconds\":%.6f,\"mibPerSecond\":%.1f,\"gbitPerSecond\":%.3f}\n",
            p, s, c, b, t, b / t / 1048576, b * 8 / t / 1e9 }'
    else
      FAILED=1
      ((rc == 124)) && err="timed out after $CLIENT_TIMEOUT s" || err=$(tail -n 1 "$LOGS/client-$c.err")
      printf '{"type":"pair","scenario":"perf","pair":%d,"server":"%s","client":"%s","ok":false,"exitCode":%d,"error":%s}\n' \
        "$p" "$(host_ip "$TAG" "$s")" "$(host_ip "$TAG" "$c")" "$rc" "$(json_string "$err")"
    fi
  done
  # The pairs run at once; the aggregate is all bytes over the slowest pair.
  awk -v n="$n" -v b="$total_bytes" -v t="$slowest" -v f="$FAILED" 'BEGIN {
    printf "{\"type\":\"summary\",\"scenario\":\"perf\",\"hosts\":%d,\"pairs\":%d,\"ok\":%s,\"downloadBytes\":%.0f,\"slowestSeconds\":%.6f,\"aggregateMibPerSecond\":%.1f}\n",
      n, n / 2, (f ? "false" : "true"), b, t, (t > 0 ? b / t / 1048576 : 0) }'
  return "$FAILED"
}

# --- ping N K COUNT -----------------------------------------------------------

scenario_ping() {
  local n=$1 k=$2 count=$3 i j rc
  [[ "$n" =~ ^[0-9]+$ ]] && ((n >= 2)) || die "ping: N must be at least 2"
  [[ "$k" =~ ^[0-9]+$ ]] && ((k >= 1 && k < n)) || die "ping: K must be 1..N-1"
  [[ "$count" =~ ^[0-9]+$ ]] && ((count >= 1)) || die "ping: COUNT must be at least 1"
  BANDWIDTH_PERF=${BANDWIDTH_PERF:-$(find_bin bandwidth_perf)}
  PING_BIN=${PING_BIN:-$(find_bin ping)}
  [[ -x "$PING_BIN" ]] || die "PING_BIN=$PING_BIN is not executable"
  local seed=${SWNET_SEED:-$RANDOM$RANDOM}
  [[ "$seed" =~ ^[0-9]{1,18}$ ]] || die "SWNET_SEED must be a number"
  start_scenario "$n"
  echo "hosts.sh: ping seed $seed" >&2
  local -a addrs
  for ((i = 1; i <= n; i++)); do start_server "$i"; done
  for ((i = 1; i <= n; i++)); do addrs[i]=$(server_addr "$i"); done
  local -a dials=()
  for ((i = 1; i <= n; i++)); do
    # K distinct peers other than i, reproducible from the seed.
    for j in $(seq 1 "$n" | grep -vx "$i" | shuf -n "$k" --random-source=<(yes "$seed-$i")); do
      timeout -k 2 "$CLIENT_TIMEOUT" ip netns exec "$(host_ns "$TAG" "$i")" \
        "$PING_BIN" --interval "${SWNET_PING_INTERVAL:-0.2}" --timeout 10 "${addrs[j]}" "$count" \
        </dev/null >"$LOGS/ping-$i-$j.out" 2>"$LOGS/ping-$i-$j.err" &
      dials+=("$i-$j:$!")
    done
  done
  local made=0 failed=0 pings_failed=0 d
  for d in "${dials[@]}"; do
    rc=0
    wait "${d#*:}" || rc=$?
    local out="$LOGS/ping-${d%%:*}.out"
    if grep -q '^connected to ' "$out"; then
      made=$((made + 1))
    else
      failed=$((failed + 1))
      echo "hosts.sh: dial ${d%%:*} failed (exit $rc): $(tail -n 1 "$LOGS/ping-${d%%:*}.err")" >&2
    fi
    pings_failed=$((pings_failed + $(grep -c '^ping [0-9]*: failed' "$out" || true)))
    if ((rc != 0)); then FAILED=1; fi
  done
  # Every successful ping's RTT, for nearest-rank percentiles.
  cat "$LOGS"/ping-*.out | sed -nE 's/^ping [0-9]+: rtt ([0-9.]+) ms$/\1/p' | sort -g >"$LOGS/rtts"
  awk -v n="$n" -v k="$k" -v c="$count" -v dials="${#dials[@]}" -v made="$made" \
    -v failed="$failed" -v pf="$pings_failed" -v seed="$seed" '
    { r[NR] = $1 }
    function rank(p,   i) { i = int(p * NR / 100); if (i < p * NR / 100) i++; if (i < 1) i = 1; return r[i] }
    END {
      if (NR > 0) { p50 = sprintf("%.3f", rank(50)); p99 = sprintf("%.3f", rank(99));
                    mn = sprintf("%.3f", r[1]); mx = sprintf("%.3f", r[NR]) }
      else { p50 = p99 = mn = mx = "null" }
      printf "{\"type\":\"summary\",\"scenario\":\"ping\",\"hosts\":%d,\"dialsPerHost\":%d,\"pingsPerDial\":%d,\"seed\":%s,\"dials\":%d,\"connectionsMade\":%d,\"handshakesFailed\":%d,\"pings\":%d,\"pingsFailed\":%d,\"rttMinMs\":%s,\"rttP50Ms\":%s,\"rttP99Ms\":%s,\"rttMaxMs\":%s}\n",
        n, k, c, seed, dials, made, failed, NR, pf, mn, p50, p99, mx
    }' "$LOGS/rtts"
  return "$FAILED"
}

# --- main ---------------------------------------------------------------------

CLIENT_TIMEOUT=${SWNET_TIMEOUT:-300}
[[ "$CLIENT_TIMEOUT" =~ ^[0-9]+$ ]] || die "SWNET_TIMEOUT must be whole seconds"

cmd=${1:-}
case "$cmd" in
  -h | --help | help)
    usage
    exit 0
    ;;
  "")
    usage >&2
    exit 2
    ;;
esac
shift
command -v ip >/dev/null || die "'ip' (iproute2) is not installed"
((EUID == 0)) || die "network namespaces need root"

case "$cmd" in
  up)
    (($# == 1)) || die "usage: hosts.sh up N"
    TAG=$(new_tag)
    # A half-made set of hosts is removed again.
    trap 'rc=$?; if ((rc)); then down "$TAG"; fi; exit $rc' EXIT
    up "$TAG" "$1"
    echo "$TAG"
    ;;
  down)
    (($# == 1)) || die "usage: hosts.sh down TAG"
    check_tag "$1"
    down "$1"
    ;;
  exec)
    (($# >= 3)) || die "usage: hosts.sh exec TAG I CMD..."
    check_tag "$1"
    ns=$(host_ns "$1" "$2")
    shift 2
    exec ip netns exec "$ns" "$@"
    ;;
  list)
    ip netns list | awk '{print $1}' | grep "^$PREFIX-" || true
    ;;
  perf)
    (($# == 2)) || die "usage: hosts.sh perf N BYTES"
    scenario_perf "$1" "$2"
    ;;
  ping)
    (($# == 3)) || die "usage: hosts.sh ping N K COUNT"
    scenario_ping "$1" "$2" "$3"
    ;;
  *)
    die "unknown command '$cmd'; see --help"
    ;;
esac
