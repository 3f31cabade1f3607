# Shared by hosts.sh and nat.sh (sourced, not run): ending the processes in
# a set of network namespaces and deleting them, and finding a workspace
# binary. Both scripts define `die`.

# End every process in the namespaces NS... (TERM, a moment to exit, then
# KILL: a process inside keeps its namespace alive after 'ip netns del'),
# then delete them; deleting a namespace deletes its links.
remove_namespaces() {
  local n pids
  [[ $# -gt 0 ]] || return 0
  for n in "$@"; do
    pids=$(ip netns pids "$n" 2>/dev/null || true)
    [[ -z "$pids" ]] || kill -TERM $pids 2>/dev/null || true
  done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    pids=""
    for n in "$@"; do pids+=$(ip netns pids "$n" 2>/dev/null || true); done
    [[ -z "$pids" ]] && break
    sleep 0.1
  done
  for n in "$@"; do
    pids=$(ip netns pids "$n" 2>/dev/null || true)
    [[ -z "$pids" ]] || kill -KILL $pids 2>/dev/null || true
  done
  for n in "$@"; do
    ip netns del "$n" 2>/dev/null || echo "$(basename "$0"): cannot delete namespace $n" >&2
  done
}

# The workspace's release build of NAME, else its debug build (under
# CARGO_TARGET_DIR or ./target), else NAME on PATH; dies with HINT.
find_workspace_bin() {
  local name=$1 hint=$2 root dir
  root=$(cd "$(dirname "$0")/../.." && pwd)
  for dir in "${CARGO_TARGET_DIR:-$root/target}/release" "${CARGO_TARGET_DIR:-$root/target}/debug"; do
    if [[ -x "$dir/$name" ]]; then
      echo "$dir/$name"
      return
    fi
  done
  command -v "$name" || die "no $name binary: $hint"
}

# A run's tag and log directory, and the teardown every run gets on exit:
# the caller sets TAG (and calls its `down` through cleanup) and names the
# variable that keeps the logs in KEEP_LOGS_VAR.
TAG=""
LOGS=""

# On exit (success, failure, Ctrl-C, SIGTERM): our background jobs, then
# the namespaces of TAG (and whatever still runs in them), then the logs.
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local jobs_left
  jobs_left=$(jobs -p)
  [[ -z "$jobs_left" ]] || kill -TERM $jobs_left 2>/dev/null || true
  [[ -z "$TAG" ]] || down "$TAG"
  if [[ -n "$LOGS" ]]; then
    if [[ "${!KEEP_LOGS_VAR:-0}" == 1 ]]; then
      echo "$(basename "$0"): logs kept in $LOGS" >&2
    else
      rm -rf "$LOGS"
    fi
  fi
  exit "$rc"
}

# Start a run: a fresh tag (new_tag), a log directory, the exit trap.
start_run() {
  TAG=$(new_tag)
  LOGS=$(mktemp -d "/tmp/$PREFIX-$TAG.XXXXXX")
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
