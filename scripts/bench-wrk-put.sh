#!/usr/bin/env bash
# Durable small-file ingest measured with wrk, a light C load generator, so
# that the client's CPU does not hide the server's capacity on a 2-core
# machine. Starts the release `bale serve` on a scratch data dir (removed at
# the end), then ROUNDS rounds of SECONDS seconds with 8 connections, each
# after a sync and a quiet pause.
#
#   scripts/bench-wrk-put.sh [SCRATCH_DIR] [ROUNDS] [SECONDS] [fsync|syncfs]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-./bale-bench-wrk}
rounds=${2:-3}
secs=${3:-10}
sync_mode=${4:-fsync}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
[ -e "$dir" ] && { echo "$dir exists; give a new scratch directory" >&2; exit 1; }
# BALE_BIN runs another build (for A/B comparisons); by default the release build.
bin=${BALE_BIN:-./target/release/bale}
[ -n "${BALE_BIN:-}" ] || cargo build --release -q
mkdir -p "$dir"
printf '[ingest]\nsync = "%s"\n' "$sync_mode" > "$dir/bale.toml"
out=$(mktemp)
"$bin" serve --config "$dir/bale.toml" --data-dir "$dir/data" --listen 127.0.0.1:0 >"$out" 2>"${BENCH_LOG:-/dev/null}" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir" "$out"' EXIT
for _ in $(seq 1 100); do grep -q listening "$out" && break; sleep 0.1; done
url=$(sed -n 's/^bale listening on //p' "$out")
export BALE_SERVER=$url BALE_TOKEN=$(cat "$dir/data/admin.token")
"$bin" mkdir /wrk
# adler32 of 10240 bytes of 'x', computed by the same code the server uses.
printf 'x%.0s' $(seq 1 10240) > "$dir/x"
"$bin" put "$dir/x" / 2>/dev/null
export DIGEST="adler32=$("$bin" stat --json /x | sed -n 's/.*"adler32": "\([0-9a-f]*\)".*/\1/p')"
for r in $(seq 1 "$rounds"); do
  sync; sleep 10
  ROUND=$r wrk -t1 -c8 -d"${secs}s" -s scripts/put-10k.lua "$url" | grep -E "Requests/sec|Latency" | tr -s ' ' | sed "s/^/round $r:/"
done
