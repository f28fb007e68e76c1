#!/usr/bin/env bash
# What TLS costs bale, with nginx beside it as the yardstick: the release
# `bale serve` twice on scratch data directories, one plain HTTP and one
# https (a CA and a certificate for 127.0.0.1 made here with openssl), and
# nginx serving the same file from disk over both. Figures:
#   1. a SIZE_MB file: PUT and GET with curl (HTTP/1.1 and HTTP/2), MB/s;
#   2. a 10 KB file: GET with wrk on 8 kept-alive connections, requests/s;
#   3. the same with a new connection per request (a TLS handshake each).
# Each curl figure is the median of ROUNDS runs.
#
#   scripts/bench-tls.sh [SCRATCH_DIR] [SIZE_MB] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-./bale-bench-tls}
size_mb=${2:-1024}
rounds=${3:-5}
for t in curl wrk openssl nginx; do
  command -v $t >/dev/null || [ -x /usr/sbin/$t ] || { echo "$t is not installed (apt-get install $t)" >&2; exit 1; }
done
[ -e "$dir" ] && { echo "$dir exists; give a new scratch directory" >&2; exit 1; }
bin=${BALE_BIN:-./target/release/bale}
[ -n "${BALE_BIN:-}" ] || cargo build --release -q
mkdir -p "$dir/www" "$dir/nginx/logs"
dir=$(cd "$dir" && pwd)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

# A CA and a server certificate for 127.0.0.1.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench CA" \
  -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$dir/srv.key" -out "$dir/srv.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > "$dir/ext"
openssl x509 -req -in "$dir/srv.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -days 2 \
  -extfile "$dir/ext" -out "$dir/srv.crt" 2>/dev/null

start() { # name, extra args...
  local name=$1; shift
  "$bin" serve --data-dir "$dir/$name" --listen 127.0.0.1:0 "$@" >"$dir/$name.out" 2>/dev/null &
  pids+=($!)
  for _ in $(seq 1 100); do grep -q listening "$dir/$name.out" 2>/dev/null && break; sleep 0.1; done
  sed -n 's/^bale listening on //p' "$dir/$name.out"
}
plain=$(start plain)
tls=$(start tls --tls-cert "$dir/srv.crt" --tls-key "$dir/srv.key")
tok_plain=$(cat "$dir/plain/admin.token")
tok_tls=$(cat "$dir/tls/admin.token")

# nginx on two free ports, the same file from disk.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
np=$(port); ns=$(port)
cat > "$dir/nginx/nginx.conf" <<CONF
master_process off;
worker_processes 1;
pid $dir/nginx/nginx.pid;
events { worker_connections 256; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path $dir/nginx/body;
  proxy_temp_path $dir/nginx/proxy;
  fastcgi_temp_path $dir/nginx/fastcgi;
  uwsgi_temp_path $dir/nginx/uwsgi;
  scgi_temp_path $dir/nginx/scgi;
  server { listen 127.0.0.1:$np; root $dir/www; }
  server { listen 127.0.0.1:$ns ssl http2; root $dir/www;
           ssl_certificate $dir/srv.crt; ssl_certificate_key $dir/srv.key; }
}
CONF
/usr/sbin/nginx -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/logs/error.log" -g 'daemon off;' &
pids+=($!)
sleep 0.5

head -c $((size_mb * 1048576)) /dev/urandom > "$dir/www/big"
head -c 10240 /dev/urandom > "$dir/www/small"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mbps() { awk '{printf "%.0f\n", $1 / 1000000}'; }
curl_put() { # url token [curl options]
  local url=$1 tok=$2; shift 2
  for r in $(seq 1 "$rounds"); do
    curl -sS --cacert "$dir/ca.pem" "$@" -H "Authorization: Bearer $tok" -H "Overwrite: T" -T "$dir/www/big" \
      -o /dev/null -w '%{speed_upload}\n' "$url/bench/big"
  done | median | mbps
}
curl_get() { # url token [curl options]
  local url=$1 tok=$2; shift 2
  for r in $(seq 1 "$rounds"); do
    curl -sS --cacert "$dir/ca.pem" "$@" ${tok:+-H "Authorization: Bearer $tok"} -o /dev/null -w '%{speed_download}\n' "$url"
  done | median | mbps
}
for u in "$plain $tok_plain" "$tls $tok_tls"; do
  set -- $u
  BALE_SERVER=$1 BALE_TOKEN=$2 BALE_CA="$dir/ca.pem" "$bin" mkdir -p /bench
  curl -sS --cacert "$dir/ca.pem" -H "Authorization: Bearer $2" -T "$dir/www/small" -o /dev/null "$1/bench/small"
done

echo "== ${size_mb} MiB, median of $rounds, MB/s"
echo "PUT  bale http            $(curl_put "$plain" "$tok_plain")"
echo "PUT  bale https HTTP/1.1  $(curl_put "$tls" "$tok_tls" --http1.1)"
echo "PUT  bale https HTTP/2    $(curl_put "$tls" "$tok_tls" --http2)"
echo "GET  bale http            $(curl_get "$plain/bench/big" "$tok_plain")"
echo "GET  bale https HTTP/1.1  $(curl_get "$tls/bench/big" "$tok_tls" --http1.1)"
echo "GET  bale https HTTP/2    $(curl_get "$tls/bench/big" "$tok_tls" --http2)"
echo "GET  nginx http           $(curl_get "http://127.0.0.1:$np/big" "")"
echo "GET  nginx https HTTP/1.1 $(curl_get "https://127.0.0.1:$ns/big" "" --http1.1)"
echo "GET  nginx https HTTP/2   $(curl_get "https://127.0.0.1:$ns/big" "" --http2)"

rps() { wrk "$@" | sed -n 's/^Requests\/sec: *//p'; }
echo "== 10 KB GET, wrk -t1 -c8 -d10s, requests/s (kept alive | a new connection each)"
printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$tok_plain" > "$dir/plain.lua"
printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$tok_tls" > "$dir/tls.lua"
printf 'wrk.headers["Connection"] = "close"\n' > "$dir/close.lua"
cat "$dir/plain.lua" "$dir/close.lua" > "$dir/plain-close.lua"
cat "$dir/tls.lua" "$dir/close.lua" > "$dir/tls-close.lua"
echo "bale http   $(rps -t1 -c8 -d10s -s "$dir/plain.lua" "$plain/bench/small") | $(rps -t1 -c8 -d10s -s "$dir/plain-close.lua" "$plain/bench/small")"
echo "bale https  $(rps -t1 -c8 -d10s -s "$dir/tls.lua" "$tls/bench/small") | $(rps -t1 -c8 -d10s -s "$dir/tls-close.lua" "$tls/bench/small")"
echo "nginx http  $(rps -t1 -c8 -d10s "http://127.0.0.1:$np/small") | $(rps -t1 -c8 -d10s -s "$dir/close.lua" "http://127.0.0.1:$np/small")"
echo "nginx https $(rps -t1 -c8 -d10s "https://127.0.0.1:$ns/small") | $(rps -t1 -c8 -d10s -s "$dir/close.lua" "https://127.0.0.1:$ns/small")"
