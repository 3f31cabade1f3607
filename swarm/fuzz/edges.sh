#!/bin/sh
# Every input's own coverage edges, for `examples/select.rs`:
#   ./edges.sh <fuzz binary> <corpus dir> <control file to write>
# Runs one libFuzzer merge per input (a merge control file of a whole corpus
# lists only the edges each input adds to those before it, which is no use
# for a set cover), and writes the `COV` lines in the control file format.
set -eu
bin=$1
dir=$2
out=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ls "$dir" | sort > "$tmp/names"
{
  wc -l < "$tmp/names" | tr -d ' '
  echo 0
  sed "s|^|$dir/|" "$tmp/names"
} > "$out"
i=0
while read -r name; do
  mkdir "$tmp/one" "$tmp/out"
  cp "$dir/$name" "$tmp/one/"
  "$bin" -merge=1 -timeout=20 -merge_control_file="$tmp/ctl" "$tmp/out" "$tmp/one" \
    > /dev/null 2>&1 || true
  grep '^COV ' "$tmp/ctl" 2> /dev/null | sed "s/^COV 0/COV $i/" >> "$out" || true
  rm -rf "$tmp/one" "$tmp/out" "$tmp/ctl"
  i=$((i + 1))
done < "$tmp/names"
