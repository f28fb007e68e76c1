#!/usr/bin/env bash
# How far the settler falls behind a burst of small files: 20,000 files of
# 10 kB put with 8 parallel streams into a fresh release server, then the
# landing notes (files whose cache copy is not yet durable) counted in the
# catalog every 0.2 s until none is left. docs/BENCHMARKS.md, issue 21.
# Usage: scripts/bench-settle-burst.sh [FILES] (needs sqlite3 and bc).
set -euo pipefail
files=${1:-20000}
bin="$(cd "$(dirname "$0")/.." && pwd)/target/release/bale"
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir "$work/src"
python3 -c "
import os, sys
for i in range(int(sys.argv[1])):
    open(f'$work/src/f{i:06d}.dat', 'wb').write(os.urandom(10000))
" "$files"
"$bin" serve --data-dir "$work/data" --listen 127.0.0.1:0 > "$work/out" 2> "$work/err" &
pid=$!
for _ in $(seq 1 50); do grep -q listening "$work/out" 2>/dev/null && break; sleep 0.2; done
export BALE_SERVER=$(sed -n 's/^bale listening on //p' "$work/out") BALE_TOKEN=$(cat "$work/data/admin.token")
"$bin" mkdir /s
t0=$(date +%s.%N)
"$bin" put -j 8 "$work/src" /s 2>&1 | tail -1
t1=$(date +%s.%N)
most=0
while true; do
  n=$(sqlite3 "$work/data/catalog.sqlite" "SELECT COUNT(*) FROM landing")
  [ "$n" -gt "$most" ] && most=$n
  [ "$n" = "0" ] && break
  sleep 0.2
done
t2=$(date +%s.%N)
echo "put $(echo "$t1 - $t0" | bc) s; landing notes at most $most; all settled $(echo "$t2 - $t1" | bc) s after the put"
