#!/usr/bin/env bash
# Real NATs for hole punching: a "public" network with a relay, and two
# private networks, each behind its own router namespace that does source
# NAT with nftables. Then the `holepunch` example runs across them.
#
# Layout, for tag T:
#   hpnat-T-sw     the public switch: bridge br0, 198.51.100.0/24
#   hpnat-T-relay  the relay:     eth0 198.51.100.1
#   hpnat-T-pub2   a second public host (mapping checks): 198.51.100.3
#   hpnat-T-ra     router A: wan 198.51.100.11, lan 192.168.1.1 (NAT)
#   hpnat-T-a      host A: eth0 192.168.1.2, default route via router A
#   hpnat-T-rb     router B: wan 198.51.100.12, lan 192.168.2.1 (NAT)
#   hpnat-T-b      host B: eth0 192.168.2.2, default route via router B
# The "public" addresses are a documentation range that only exists inside
# these namespaces; nothing is added to the root namespace and nothing has
# a route out of the testbed.
#
# NAT variants (the routers' nftables rules):
#   eim   masquerade: Linux keeps the source port and reuses the mapping
#         for every destination (endpoint-independent mapping, as a home
#         router); only answers to what went out come in.
#   apdm  masquerade random: a new random port per destination
#         (address-and-port-dependent mapping, "symmetric" NAT), the kind
#         that defeats hole punching.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: nat.sh COMMAND ...   (as root; needs iproute2 and nftables)

Commands:
  up VARIANT             create a testbed (VARIANT: eim | apdm); prints the tag
  down TAG               kill the processes in, and delete, the namespaces of TAG
  exec TAG HOST CMD...   run CMD in HOST (relay, pub2, a, b, ra, rb) of TAG
  list                   namespaces any run of this script left behind
  selftest VARIANT       build a testbed, probe its NAT with UDP (python3),
                         print JSON lines and a summary, remove it
  punch VARIANT N        build a testbed, run 'holepunch relay' on the relay,
                         'holepunch listen' on B and N times 'holepunch dial'
                         on A (ping and perf over the direct connection, or a
                         ping over the relayed one when the punch fails); one
                         JSON line per attempt, then a summary with the
                         success count and AutoNAT's verdicts; remove it

'selftest' and 'punch' always remove their namespaces and processes when
they exit (success, failure, Ctrl-C, SIGTERM).

Environment:
  HPNAT_TAG        tag for up/selftest/punch ([a-z0-9], at most 12 characters)
  HOLEPUNCH        the holepunch binary (default: release build, then debug
                   build under CARGO_TARGET_DIR or ./target, then PATH)
  HPNAT_TIMEOUT    seconds allowed for each dial attempt (default 30)
  HPNAT_TRANSPORT  quic (default) or tcp: what the relay, A and B listen on,
                   so what the circuit runs over and the punch uses (TCP:
                   dials from the listen port, a TCP simultaneous open)
  HPNAT_A, HPNAT_B who plays the dialer A and the listener B: ours (default)
                   or rust (rust-libp2p 0.57: the rust_holepunch binary of
                   the rust-libp2p-peer package, or RUST_HOLEPUNCH)
  HPNAT_PERF_BYTES bytes each way of the perf run over each direct connection
                   (default 1 MiB: far over the relay's 128 KiB circuit limit)
  HPNAT_KEEP_LOGS  1: keep the per-process logs (their directory is printed)

Example:
  cargo build --release -p holepunch
  sudo perf/netns/nat.sh punch eim 20
  sudo perf/netns/nat.sh punch apdm 20
  sudo HPNAT_TRANSPORT=tcp perf/netns/nat.sh punch eim 20
EOF
}

die() {
  echo "nat.sh: $*" >&2
  exit 1
}

# shellcheck source=perf/netns/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
KEEP_LOGS_VAR=HPNAT_KEEP_LOGS

PREFIX=hpnat
PUBLIC=198.51.100
RELAY_PORT=4001

new_tag() {
  if [[ -n "${HPNAT_TAG:-}" ]]; then
    [[ "$HPNAT_TAG" =~ ^[a-z0-9]{1,12}$ ]] || die "HPNAT_TAG must be 1-12 characters of [a-z0-9]"
    echo "$HPNAT_TAG"
  else
    printf '%x%04x\n' "$$" "$RANDOM"
  fi
}

check_tag() { [[ "$1" =~ ^[a-z0-9]{1,12}$ ]] || die "bad tag '$1'"; }
check_variant() { [[ "$1" == eim || "$1" == apdm ]] || die "VARIANT must be eim or apdm, got '$1'"; }
ns() { echo "$PREFIX-$1-$2"; }

tag_namespaces() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$PREFIX-$1-(sw|relay|pub2|ra|rb|a|b)\$" || true
}

# A host on the public switch: veth h-NAME in the switch, eth0 (or wan) in it.
attach_public() {
  local tag=$1 name=$2 ip=$3 dev=$4
  local sw
  sw=$(ns "$tag" sw)
  ip -n "$sw" link add "h-$name" type veth peer name "$dev" netns "$(ns "$tag" "$name")"
  ip -n "$sw" link set "h-$name" master br0
  ip -n "$sw" link set "h-$name" up
  ip -n "$(ns "$tag" "$name")" addr add "$ip/24" dev "$dev"
  ip -n "$(ns "$tag" "$name")" link set "$dev" up
}

# A router (ra/rb) with host (a/b) behind it on 192.168.NET.0/24.
private_net() {
  local tag=$1 router=$2 host=$3 net=$4 wan_ip=$5 variant=$6
  local r h masq
  r=$(ns "$tag" "$router")
  h=$(ns "$tag" "$host")
  attach_public "$tag" "$router" "$wan_ip" wan
  ip -n "$r" link add lan type veth peer name eth0 netns "$h"
  ip -n "$r" addr add "192.168.$net.1/24" dev lan
  ip -n "$r" link set lan up
  ip -n "$h" addr add "192.168.$net.2/24" dev eth0
  ip -n "$h" link set eth0 up
  ip -n "$h" route add default via "192.168.$net.1"
  ip netns exec "$r" sysctl -qw net.ipv4.ip_forward=1
  if [[ "$variant" == apdm ]]; then masq="masquerade random"; else masq="masquerade"; fi
  ip netns exec "$r" nft -f - <<NFT
table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" $masq
  }
}
table ip filter {
  chain forward {
    type filter hook forward priority filter; policy drop;
    iifname "lan" oifname "wan" accept
    ct state established,related accept
  }
  # Unsolicited packets to the router itself are dropped before conntrack
  # confirms an entry for them: a confirmed entry for the peer's first
  # punch would clash with our host's outgoing mapping to that peer, and
  # Linux would give the host another port (a home router does not).
  chain input {
    type filter hook input priority filter; policy drop;
    iifname { "lo", "lan" } accept
    ct state established,related accept
  }
}
NFT
}

up() {
  local tag=$1 variant=$2 name sw
  check_variant "$variant"
  [[ -z "$(tag_namespaces "$tag")" ]] || die "namespaces of tag $tag exist already"
  for name in sw relay pub2 ra rb a b; do
    ip netns add "$(ns "$tag" "$name")"
    ip -n "$(ns "$tag" "$name")" link set lo up
  done
  sw=$(ns "$tag" sw)
  ip -n "$sw" link add br0 type bridge
  ip -n "$sw" link set br0 up
  attach_public "$tag" relay "$PUBLIC.1" eth0
  attach_public "$tag" pub2 "$PUBLIC.3" eth0
  private_net "$tag" ra a 1 "$PUBLIC.11" "$variant"
  private_net "$tag" rb b 2 "$PUBLIC.12" "$variant"
}

down() {
  local namespaces
  namespaces=$(tag_namespaces "$1")
  # shellcheck disable=SC2086 # one namespace name per word
  remove_namespaces $namespaces
}

start_testbed() {
  start_run
  echo "nat.sh: tag $TAG, variant $1, logs $LOGS" >&2
  up "$TAG" "$1"
}

in_ns() {
  local host=$1
  shift
  ip netns exec "$(ns "$TAG" "$host")" "$@"
}

# --- selftest: the NAT's behaviour, seen with UDP ----------------------------

# A UDP echo of the sender's address: answers each datagram with "ip:port".
ECHO_PY='
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(30)
while True:
    try:
        data, peer = s.recvfrom(2048)
    except socket.timeout:
        break
    s.sendto(("%s:%d" % peer).encode(), peer)
'

# From one socket: ask both echo servers how they see us, then wait for an
# unsolicited datagram (from pub2's other port) that must not come in.
MAPPING_PY='
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5000))
s.settimeout(2)
seen = []
for host in sys.argv[1:3]:
    s.sendto(b"?", (host, 7000))
    data, _ = s.recvfrom(2048)
    seen.append(data.decode())
print(json.dumps({"type": "mapping", "relay_sees": seen[0], "pub2_sees": seen[1]}))
'

UNSOLICITED_PY='
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 7001))
host, port = sys.argv[1].split(":")
for _ in range(5):
    s.sendto(b"unsolicited", (host, int(port)))
'

LISTEN_PY='
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5000))
s.settimeout(float(sys.argv[1]))
try:
    data, peer = s.recvfrom(2048)
    print(json.dumps({"received": data.decode(), "from": "%s:%d" % peer}))
except socket.timeout:
    print(json.dumps({"received": None}))
'

# Both sides learn their mapping from the relay, then send to each other's
# mapping a few times while listening: a punch works if each hears the other.
PUNCH_PY='
import json, socket, sys, time
me, relay, other_file, my_file = sys.argv[1:5]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5001))
s.settimeout(2)
s.sendto(b"?", (relay, 7000))
mine = s.recvfrom(2048)[0].decode()
open(my_file + ".tmp", "w").write(mine)
import os
os.rename(my_file + ".tmp", my_file)
deadline = time.time() + 10
while not os.path.exists(other_file):
    if time.time() > deadline:
        print(json.dumps({"type": "punch", "side": me, "heard": False, "error": "no peer mapping"}))
        sys.exit(0)
    time.sleep(0.05)
host, port = open(other_file).read().split(":")
s.settimeout(0.2)
heard = False
for _ in range(25):
    s.sendto(("hello from " + me).encode(), (host, int(port)))
    try:
        data, peer = s.recvfrom(2048)
        if data.startswith(b"hello"):
            heard = True
            s.sendto(("hello from " + me).encode(), (host, int(port)))
            break
    except socket.timeout:
        pass
print(json.dumps({"type": "punch", "side": me, "mine": mine, "peer": host + ":" + port, "heard": heard}))
'

selftest() {
  local variant=$1
  command -v python3 >/dev/null || die "python3 is needed for selftest"
  start_testbed "$variant"
  in_ns relay python3 -c "$ECHO_PY" "$PUBLIC.1" 7000 &
  in_ns pub2 python3 -c "$ECHO_PY" "$PUBLIC.3" 7000 &
  sleep 0.3
  local mapping relay_sees pub2_sees same unsolicited
  mapping=$(in_ns a python3 -c "$MAPPING_PY" "$PUBLIC.1" "$PUBLIC.3")
  echo "$mapping"
  relay_sees=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["relay_sees"])' "$mapping")
  pub2_sees=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["pub2_sees"])' "$mapping")
  same=false
  [[ "$relay_sees" == "$pub2_sees" ]] && same=true
  # Unsolicited: A listens on its mapped port's socket; pub2 sends from a
  # port A never talked to, to A's mapping as the relay saw it.
  in_ns a python3 -c "$LISTEN_PY" 1.5 >"$LOGS/unsolicited" &
  local listener=$!
  sleep 0.3
  in_ns pub2 python3 -c "$UNSOLICITED_PY" "$relay_sees"
  wait "$listener"
  unsolicited=$(cat "$LOGS/unsolicited")
  echo "{\"type\":\"unsolicited\",\"result\":$unsolicited}"
  local dropped=true
  [[ "$unsolicited" == *'"received": null'* ]] || dropped=false
  # The UDP hole punch between A and B through both NATs.
  in_ns a python3 -c "$PUNCH_PY" a "$PUBLIC.1" "$LOGS/map-b" "$LOGS/map-a" >"$LOGS/punch-a" &
  local pa=$!
  in_ns b python3 -c "$PUNCH_PY" b "$PUBLIC.1" "$LOGS/map-a" "$LOGS/map-b" >"$LOGS/punch-b" &
  local pb=$!
  wait "$pa" "$pb"
  cat "$LOGS/punch-a" "$LOGS/punch-b"
  local punched=false
  if grep -q '"heard": true' "$LOGS/punch-a" && grep -q '"heard": true' "$LOGS/punch-b"; then
    punched=true
  fi
  echo "{\"type\":\"summary\",\"variant\":\"$variant\",\"same_mapping\":$same,\"unsolicited_dropped\":$dropped,\"udp_punch\":$punched}"
}

# --- punch: the holepunch example across the NATs ---------------------------

find_holepunch() {
  if [[ -n "${HOLEPUNCH:-}" ]]; then
    echo "$HOLEPUNCH"
  else
    find_workspace_bin holepunch "cargo build --release -p holepunch, or set HOLEPUNCH"
  fi
}

find_rust_holepunch() {
  if [[ -n "${RUST_HOLEPUNCH:-}" ]]; then
    echo "$RUST_HOLEPUNCH"
  else
    find_workspace_bin rust_holepunch \
      "cargo build -p rust-libp2p-peer --bin rust_holepunch, or set RUST_HOLEPUNCH"
  fi
}

# The first "Listening on ..." line of a log, waiting up to 30 s.
wait_listening() {
  local log=$1 line
  for _ in $(seq 300); do
    line=$(grep -m1 '^Listening on ' "$log" 2>/dev/null || true)
    if [[ -n "$line" ]]; then
      echo "${line#Listening on }"
      return
    fi
    sleep 0.1
  done
  die "no 'Listening on' line in $log: $(tail -3 "$log" 2>/dev/null)"
}

punch() {
  local variant=$1 n=$2 bin relay_addr b_addr b_peer i ok=0 rc start took
  [[ "$n" =~ ^[0-9]+$ ]] && ((n >= 1 && n <= 1000)) || die "N must be 1..1000, got '$n'"
  bin=$(find_holepunch)
  local timeout=${HPNAT_TIMEOUT:-30}
  local a_impl=${HPNAT_A:-ours} b_impl=${HPNAT_B:-ours} rust=""
  [[ "$a_impl" == ours || "$a_impl" == rust ]] || die "HPNAT_A must be ours or rust"
  [[ "$b_impl" == ours || "$b_impl" == rust ]] || die "HPNAT_B must be ours or rust"
  [[ "$a_impl$b_impl" == oursours ]] || rust=$(find_rust_holepunch)
  local transport=${HPNAT_TRANSPORT:-quic} relay_listen peer_listen=()
  case "$transport" in
    quic) relay_listen="/ip4/$PUBLIC.1/udp/$RELAY_PORT/quic-v1" ;;
    tcp)
      relay_listen="/ip4/$PUBLIC.1/tcp/$RELAY_PORT"
      peer_listen=(--listen /ip4/0.0.0.0/tcp/0)
      ;;
    *) die "HPNAT_TRANSPORT must be quic or tcp, got '$transport'" ;;
  esac
  start_testbed "$variant"
  local allow=(--autonat-allow "$PUBLIC.0/24")
  in_ns relay env RUST_LOG="${HPNAT_RUST_LOG:-warn}" "$bin" relay --listen "$relay_listen" \
    "${allow[@]}" >"$LOGS/relay.out" 2>"$LOGS/relay.err" &
  relay_addr=$(wait_listening "$LOGS/relay.out")
  if [[ "$b_impl" == rust ]]; then
    in_ns b env RUST_LOG="${HPNAT_RUST_LOG:-warn}" "$rust" listen --relay "$relay_addr" "${peer_listen[@]}" \
      >"$LOGS/b.out" 2>"$LOGS/b.err" &
  else
    in_ns b env RUST_LOG="${HPNAT_RUST_LOG:-warn}" "$bin" listen --relay "$relay_addr" "${allow[@]}" \
      "${peer_listen[@]}" >"$LOGS/b.out" 2>"$LOGS/b.err" &
  fi
  b_addr=$(wait_listening "$LOGS/b.out")
  b_peer=${b_addr##*/p2p/}
  for ((i = 1; i <= n; i++)); do
    start=$(date +%s%N)
    rc=0
    if [[ "$a_impl" == rust ]]; then
      in_ns a env RUST_LOG="${HPNAT_RUST_LOG:-warn}" timeout "$((timeout + 5))" "$rust" dial --relay "$relay_addr" "$b_peer" \
        --timeout "$timeout" "${peer_listen[@]}" >"$LOGS/a-$i.out" 2>"$LOGS/a-$i.err" || rc=$?
    else
      in_ns a env RUST_LOG="${HPNAT_RUST_LOG:-warn}" timeout "$((timeout + 5))" "$bin" dial --relay "$relay_addr" "$b_peer" \
        --timeout "$timeout" --pings 1 --perf "${HPNAT_PERF_BYTES:-1048576}" "${allow[@]}" \
        "${peer_listen[@]}" >"$LOGS/a-$i.out" 2>"$LOGS/a-$i.err" || rc=$?
    fi
    took=$((($(date +%s%N) - start) / 1000000))
    local direct reason perf relayed=false relayed_ping=false
    direct=$(grep -m1 '"event":"direct"' "$LOGS/a-$i.out" || true)
    perf=$(grep -m1 '"event":"perf"' "$LOGS/a-$i.out" || echo null)
    grep -q '"event":"relayed"' "$LOGS/a-$i.out" && relayed=true
    grep -q '"event":"relayed_ping"' "$LOGS/a-$i.out" && relayed_ping=true
    reason=$(tail -1 "$LOGS/a-$i.err" 2>/dev/null | tr -d '"\\' || true)
    if [[ $rc -eq 0 && -n "$direct" ]]; then
      ok=$((ok + 1))
      echo "{\"type\":\"attempt\",\"n\":$i,\"ok\":true,\"ms\":$took,\"relayed\":$relayed,\"direct\":$direct,\"perf\":$perf}"
    else
      echo "{\"type\":\"attempt\",\"n\":$i,\"ok\":false,\"ms\":$took,\"relayed\":$relayed,\"relayed_ping\":$relayed_ping,\"exit\":$rc,\"reason\":\"$reason\"}"
    fi
  done
  # AutoNAT's verdicts: B's takes a dial-back timeout (the NAT drops the
  # server's dial), and the relay's needs a server that connected to it
  # and identified, so wait for both a while (ours only: rust_holepunch
  # runs no AutoNAT).
  local relay_reachable=false b_unreachable=false waits=300
  [[ "$a_impl$b_impl" == oursours ]] || waits=0
  for _ in $(seq "$waits"); do
    grep -q '"event":"unreachable"' "$LOGS/b.out" &&
      grep '"event":"reachable"' "$LOGS/relay.out" | grep -q "/ip4/$PUBLIC.1/" && break
    sleep 0.1
  done
  grep '"event":"reachable"' "$LOGS/relay.out" | grep -q "/ip4/$PUBLIC.1/" && relay_reachable=true
  grep '"event":"unreachable"' "$LOGS/b.out" | grep -q "/ip4/$PUBLIC.12/" && b_unreachable=true
  # B's direct address must never be confirmed reachable behind its NAT.
  grep '"event":"reachable"' "$LOGS/b.out" | grep -q "/ip4/$PUBLIC.12/" && b_unreachable=false
  echo "{\"type\":\"summary\",\"variant\":\"$variant\",\"transport\":\"$transport\",\"a\":\"$a_impl\",\"b\":\"$b_impl\",\"attempts\":$n,\"direct\":$ok,\"relay_reachable\":$relay_reachable,\"b_unreachable\":$b_unreachable}"
}

# --- main ---------------------------------------------------------------------

cmd=${1:-}
[[ -n "$cmd" ]] || {
  usage
  exit 1
}
shift
case "$cmd" in
  -h | --help | help) usage ;;
  up)
    [[ $# -eq 1 ]] || die "usage: up VARIANT"
    check_variant "$1"
    command -v nft >/dev/null || die "nft (nftables) is needed"
    tag=$(new_tag)
    up "$tag" "$1"
    echo "$tag"
    ;;
  down)
    [[ $# -eq 1 ]] || die "usage: down TAG"
    check_tag "$1"
    down "$1"
    ;;
  exec)
    [[ $# -ge 3 ]] || die "usage: exec TAG HOST CMD..."
    check_tag "$1"
    tag=$1 host=$2
    shift 2
    exec ip netns exec "$(ns "$tag" "$host")" "$@"
    ;;
  list) ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$PREFIX-" || true ;;
  selftest)
    [[ $# -eq 1 ]] || die "usage: selftest VARIANT"
    check_variant "$1"
    command -v nft >/dev/null || die "nft (nftables) is needed"
    selftest "$1"
    ;;
  punch)
    [[ $# -eq 2 ]] || die "usage: punch VARIANT N"
    check_variant "$1"
    command -v nft >/dev/null || die "nft (nftables) is needed"
    punch "$1" "$2"
    ;;
  *) die "unknown command '$cmd' (try --help)" ;;
esac
