#!/usr/bin/env bash
# Scale-out load run, all in one run on this machine. By hand, not CI.
#
# What it measures (wrk, THREADS=2 threads, CONNECTIONS=64 connections, DURATION=15s each after
# a WARMUP=3s run thrown away; ROUNDS=3 rounds, medians reported):
#   a. the manifest endpoint of a replica on SQLite against one on PostgreSQL and a bucket (the
#      S3-compatible s3s-fs of .ci/services.sh), each serving the demo's signed update, the two
#      alternating: answers come from memory, so the store should not matter;
#   b. nginx (proxy, keep-alive upstream) in front of one replica, then in front of two
#      replicas on the same database: on this machine the two replicas share its cores;
#   c. the CPU time per answered manifest request of the replica behind nginx, from
#      /proc/<pid>/stat, and from it a projection of what N replicas on N machines would answer;
#   d. the time from a publish's answer (through one replica) to the first request the other
#      replica answers with it, over PUBLISHES=100 publishes (propagation.py): p50, p90, p99.
# Writes raw wrk output and summary.txt to RESULTS (default a new /tmp/otago-scale.XXXXXX).
#
# Run: benches/load/scale.sh   (PostgreSQL must run: OTAGO_TEST_DATABASE_URL, default the
# local `test` database; wrk, nginx, python3 with `cryptography` or openssl; root to install)

set -euo pipefail

DURATION=${DURATION:-15s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
PUBLISHES=${PUBLISHES:-100}
PLATFORM=android

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
FIXTURE=$ROOT/examples/expo-app

log() { printf '[scale %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v psql >/dev/null || need+=(postgresql-client)
if ((${#need[@]})); then
    apt-get install -y "${need[@]}" >/dev/null || die "cannot install ${need[*]}"
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
CLK_TCK=$(getconf CLK_TCK)

WORK=$(mktemp -d /tmp/otago-scale-work.XXXXXX)
chmod 755 "$WORK"
RESULTS=${RESULTS:-$(mktemp -d /tmp/otago-scale.XXXXXX)}
mkdir -p "$RESULTS" "$WORK/app" "$WORK/nginx"
PIDS=()

# The S3-compatible server and the test database's variables (stopped on exit).
cd "$ROOT"
# shellcheck source=../../.ci/services.sh
source .ci/services.sh
cleanup() {
    set +e
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    otago_services_stop
    rm -rf "$WORK"
    log "results in $RESULTS"
}
trap cleanup EXIT

log "building otago-server (release)"
cargo build --release -p otago-server --locked >"$RESULTS/build.log" 2>&1 || die "build failed"
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/otago-server

for item in app.json expo-config.public.json keys certs; do ln -s "$FIXTURE/$item" "$WORK/app/$item"; done
ln -s "$FIXTURE/exports/v1" "$WORK/app/dist"
OTAGO_ADMIN_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export OTAGO_ADMIN_TOKEN
SCHEMA=otago_scale_$RANDOM$RANDOM
psql -q "$OTAGO_TEST_DATABASE_URL" -c "CREATE SCHEMA $SCHEMA"
sep='?'; [[ $OTAGO_TEST_DATABASE_URL == *\?* ]] && sep='&'
DATABASE="$OTAGO_TEST_DATABASE_URL${sep}options=-csearch_path%3D$SCHEMA"
STORAGE="${OTAGO_TEST_S3_URL/otago-test?/otago-test/scale-$SCHEMA?}"

start() { # name data-dir [args]: starts a replica, prints "pid port"
    local name=$1 data=$2 i port
    shift 2
    "$BIN" --listen 127.0.0.1:0 --data-dir "$data" --log warn "$@" \
        >"$RESULTS/$name.out" 2>"$RESULTS/$name.err" &
    local pid=$!
    for ((i = 0; i < 600; i++)); do
        grep -q 'otago-server listening on' "$RESULTS/$name.out" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || die "$name exited, see $RESULTS/$name.err"
        sleep 0.05
    done
    port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$RESULTS/$name.out")
    echo "$pid $port"
}
read -r SQLITE_PID SQLITE_PORT < <(start sqlite "$WORK/sqlite" --demo --demo-app-dir "$WORK/app")
read -r PG1_PID PG1_PORT < <(start pg1 "$WORK/pg1" --database-url "$DATABASE" --storage-url "$STORAGE" --demo --demo-app-dir "$WORK/app")
read -r PG2_PID PG2_PORT < <(start pg2 "$WORK/pg2" --database-url "$DATABASE" --storage-url "$STORAGE")
PIDS+=("$SQLITE_PID" "$PG1_PID" "$PG2_PID")
ref_of() { sed -n 's/.* as project \(p_[a-z0-9]*\) .*/\1/p' "$RESULTS/$1.out"; }
SQLITE_REF=$(ref_of sqlite)
PG_REF=$(ref_of pg1)
[ -n "$SQLITE_REF" ] && [ -n "$PG_REF" ] || die "no demo project ref"
sleep 3 # the demo's assets compress; the second replica follows the publish

headers=(
    -H 'Accept: multipart/mixed,application/expo+json,application/json'
    -H "Expo-Platform: $PLATFORM" -H 'Expo-Protocol-Version: 1' -H 'Expo-API-Version: 1'
    -H 'Expo-Updates-Environment: BARE' -H 'EAS-Client-ID: 5f3c2a1e-7b4d-4e8a-9c2f-1d6e8b3a0f42'
    -H 'Expo-Runtime-Version: 1.0.0'
    -H 'expo-expect-signature: sig, keyid="main", alg="rsa-v1_5-sha256"'
)
for url in "http://127.0.0.1:$SQLITE_PORT/manifest/$SQLITE_REF" "http://127.0.0.1:$PG1_PORT/manifest/$PG_REF" \
    "http://127.0.0.1:$PG2_PORT/manifest/$PG_REF"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "${headers[@]}" "$url")
    [ "$code" = 200 ] || die "$url answered $code"
done

# nginx: port A in front of pg1 alone, port B in front of pg1 and pg2.
ONE_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TWO_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes $(nproc);
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/client_body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    keepalive_requests 1000000;
    upstream one { server 127.0.0.1:$PG1_PORT; keepalive 64; }
    upstream two { server 127.0.0.1:$PG1_PORT; server 127.0.0.1:$PG2_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$ONE_PORT;
        location / { proxy_pass http://one; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
    server {
        listen 127.0.0.1:$TWO_PORT;
        location / { proxy_pass http://two; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
EOF
"$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" &
PIDS+=($!)
sleep 0.5

ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
# run NAME URL PIDS...: wrk after a warm-up; prints "requests/s cpu-ms-per-request"
run() {
    local name=$1 url=$2
    shift 2
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "${headers[@]}" "$url" >/dev/null
    local t0 t1
    t0=$(ticks "$@")
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${headers[@]}" "$url" >"$RESULTS/$name.txt"
    t1=$(ticks "$@")
    local rps requests
    rps=$(awk '/^Requests\/sec/ {print $2}' "$RESULTS/$name.txt")
    requests=$(awk '/requests in/ {print $1}' "$RESULTS/$name.txt")
    grep -q 'Non-2xx' "$RESULTS/$name.txt" && die "$name: non-2xx answers, see $RESULTS/$name.txt"
    awk -v r="$rps" -v n="$requests" -v d="$((t1 - t0))" -v hz="$CLK_TCK" \
        'BEGIN {printf "%s %.4f\n", r, (d / hz * 1000) / n}'
}
median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

declare -A RPS CPU
for ((round = 1; round <= ROUNDS; round++)); do
    log "round $round of $ROUNDS"
    for case in sqlite postgres one two; do
        case $case in
        sqlite) read -r r c < <(run "$case-$round" "http://127.0.0.1:$SQLITE_PORT/manifest/$SQLITE_REF" "$SQLITE_PID") ;;
        postgres) read -r r c < <(run "$case-$round" "http://127.0.0.1:$PG1_PORT/manifest/$PG_REF" "$PG1_PID") ;;
        one) read -r r c < <(run "$case-$round" "http://127.0.0.1:$ONE_PORT/manifest/$PG_REF" "$PG1_PID") ;;
        two) read -r r c < <(run "$case-$round" "http://127.0.0.1:$TWO_PORT/manifest/$PG_REF" "$PG1_PID" "$PG2_PID") ;;
        esac
        RPS[$case]+="$r "
        CPU[$case]+="$c "
    done
done
m() { tr ' ' '\n' <<<"$1" | grep -v '^$' | median; }

log "propagation: $PUBLISHES publishes through one replica, watched on the other"
python3 "$HERE/propagation.py" --publish-url "http://127.0.0.1:$PG1_PORT" --watch-url "http://127.0.0.1:$PG2_PORT" \
    --token "$OTAGO_ADMIN_TOKEN" --project "$PG_REF" --key "$FIXTURE/keys/private-key.pem" \
    --platform "$PLATFORM" --count "$PUBLISHES" >"$RESULTS/propagation.json"

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS rounds, medians; manifest of the demo update ($PLATFORM, signed)"
    sqlite=$(m "${RPS[sqlite]}") postgres=$(m "${RPS[postgres]}")
    echo "a. replica on SQLite:                     $sqlite req/s"
    echo "   replica on PostgreSQL + bucket:        $postgres req/s ($(awk -v a="$postgres" -v b="$sqlite" 'BEGIN {printf "%.2f", a / b}')x)"
    one=$(m "${RPS[one]}") two=$(m "${RPS[two]}")
    echo "b. nginx -> one replica:                  $one req/s"
    echo "   nginx -> two replicas (same machine):  $two req/s ($(awk -v a="$two" -v b="$one" 'BEGIN {printf "%.2f", a / b}')x)"
    cpu=$(m "${CPU[one]}")
    echo "c. replica CPU per manifest request (behind nginx): $cpu ms"
    echo "   projection, N replicas on N machines of $(nproc) cores with nginx elsewhere: N x $(awk -v c="$cpu" -v n="$(nproc)" 'BEGIN {printf "%.0f", n * 1000 / c}') req/s"
    echo "d. propagation over $PUBLISHES publishes: $(cat "$RESULTS/propagation.json")"
} | tee "$RESULTS/summary.txt"
