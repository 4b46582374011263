#!/usr/bin/env bash
# Load benchmark: otago-server against nginx on the same machine, in one run. By hand, not CI.
#
# What it measures (wrk, THREADS=2 threads, CONNECTIONS=64 connections, DURATION=20s each,
# after a WARMUP=3s run that is thrown away; wrk, the server and nginx share the machine's cores):
#   a. otago-server's manifest endpoint, GET /manifest/<ref>, with the headers expo-updates
#      sends (PROTOCOL.md §2.2), answering the example app's exports/v1 update, signed;
#   b. nginx (worker_processes = cores, own temp config) serving the SAME response body bytes,
#      fetched once from otago-server, as a static file with the same protocol headers;
#   c. the 1.6 MB Android launch asset: otago-server's /assets/<hash> (identity encoding, sent
#      from memory after the first request: default --asset-memory-mb) against nginx serving
#      the same file with sendfile on;
#   d. otago-server's memory: VmRSS (and thread count) sampled every 0.2 s during each load, and
#      VmHWM (peak, reset before each run through /proc/<pid>/clear_refs), from /proc/<pid>/status;
#   e. (a) again after 10,000 more signed updates are published through the management API
#      (publish_many.py: 40 % on the measured channel itself, 20 % on 100 other runtime versions
#      of the project, 40 % on 8 other projects), then once more after a restart that loads
#      them all from SQLite; each time alternating with a second otago-server whose store holds
#      only the demo's update, as the reference measured at the same time.
# It prints a summary table with ratios against nginx from this same run, the issue's targets
# marked met / not met, and writes raw wrk output, logs and summary.md to a results folder
# (RESULTS, by default a new /tmp/otago-load-results.XXXXXX, kept). About 17 minutes with the
# defaults, plus the build. Numbers move by ±10 % between runs on a shared VM: compare within a run.
#
# Run (as root if wrk or nginx must be installed; the release build takes minutes):
#   benches/load/run.sh
# Knobs (environment): DURATION=20s WARMUP=3s CONNECTIONS=64 THREADS=2 UPDATES=10000 ROUNDS=3
#   (each comparison runs ROUNDS times, otago-server and nginx alternating; medians are reported)
#   QUIET_WAIT=180 (before each run, wait up to this many seconds for the machine to be ≥ 90 %
#   idle: other people's builds skew the numbers; the busy share is recorded either way)
#   PLATFORM=android FIXTURE=<repo>/examples/expo-app RESULTS=<dir> KEEP_TMP=1
#
# Needs python3 (publish_many.py signs with the `cryptography` package when it is there, with
# `openssl` otherwise). Installing Debian's nginx package may start the system nginx on :80 where
# services may start; this script does not use it.
# All traffic goes to 127.0.0.1. The server gets a temporary data folder and port; the fixture
# is only read (the demo app folder is symlinks to it). Everything started is stopped on exit.

set -euo pipefail

DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
UPDATES=${UPDATES:-10000}
ROUNDS=${ROUNDS:-3}
QUIET_WAIT=${QUIET_WAIT:-180}
PLATFORM=${PLATFORM:-android}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
FIXTURE=${FIXTURE:-$ROOT/examples/expo-app}
FIXTURE=$(cd "$FIXTURE" && pwd)

log() { printf '[load %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# --- what it needs --------------------------------------------------------------------------
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
command -v openssl >/dev/null || need+=(openssl)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    apt-get install -y "${need[@]}" >/dev/null ||
        { apt-get update >/dev/null && apt-get install -y "${need[@]}" >/dev/null; } ||
        die "cannot install ${need[*]} (run as root, or install them)"
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
CLK_TCK=$(getconf CLK_TCK)
NPROC=$(nproc)

# --- folders, and stopping everything on exit ------------------------------------------------
WORK=$(mktemp -d /tmp/otago-load.XXXXXX)
chmod 755 "$WORK"  # nginx workers (user nobody when started as root) read www/
RESULTS=${RESULTS:-$(mktemp -d /tmp/otago-load-results.XXXXXX)}
mkdir -p "$RESULTS" "$WORK/www" "$WORK/nginx" "$WORK/app"
SERVER_PID='' MAIN_PID='' FRESH_PID='' NGINX_PID='' SAMPLER_PID=''

stop_pid() { # pid signal seconds: signal, wait up to `seconds`, then SIGKILL
    local pid=$1 sig=$2 i
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < $3 * 10; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    set +e
    stop_pid "$SAMPLER_PID" TERM 2
    stop_pid "$SERVER_PID" TERM 15
    stop_pid "$MAIN_PID" TERM 15
    stop_pid "$FRESH_PID" TERM 15
    stop_pid "$NGINX_PID" QUIT 10
    if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    log "results in $RESULTS"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
json() { # json FILE PYTHON-EXPR-ON-d
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}
cpu_ticks() { # total utime+stime of the given pids
    local t=0 pid
    for pid in "$@"; do
        [ -r "/proc/$pid/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    echo "$t"
}
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
wait_idle() { # waits (at most 120 s) until the pid uses < 2 % of a core for 2 s in a row
    local pid=$1 quiet=0 i a b
    for ((i = 0; i < 120 && quiet < 2; i++)); do
        a=$(cpu_ticks "$pid"); sleep 1; b=$(cpu_ticks "$pid")
        if ((b - a <= CLK_TCK / 50)); then quiet=$((quiet + 1)); else quiet=0; fi
    done
}

# --- machine and versions ---------------------------------------------------------------------
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc: $NPROC"
    echo "cpu: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "memory: $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "kernel: $(uname -sr)"
    echo "wrk: $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
    echo "nginx: $("$NGINX" -v 2>&1 | sed 's/.*version: //')"
    echo "rustc: $(rustc -V)"
    echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD -- otago-server otago-core 2>/dev/null || echo ' (+ uncommitted changes in otago-server/otago-core)')"
    echo "settings: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency (warm-up $WARMUP), $UPDATES updates in (e)"
} >"$RESULTS/machine.txt"
cat "$RESULTS/machine.txt" >&2

# --- build -------------------------------------------------------------------------------------
log "building otago-server (release)"
(cd "$ROOT" && cargo build --release -p otago-server) >"$RESULTS/build.log" 2>&1 ||
    die "cargo build failed, see $RESULTS/build.log"
cp "${CARGO_TARGET_DIR:-$ROOT/target}/release/otago-server" "$WORK/otago-server" # others rebuild it

# --- otago-server with the fixture's exports/v1 published (demo mode, signed with its TEST key) ---
for item in app.json expo-config.public.json keys certs; do ln -s "$FIXTURE/$item" "$WORK/app/$item"; done
ln -s "$FIXTURE/exports/v1" "$WORK/app/dist"
OTAGO_ADMIN_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export OTAGO_ADMIN_TOKEN

START_SECONDS=0
start_server() { # name data-dir listen [extra args]: starts, waits for "listening"; sets
    local name=$1 data=$2 listen=$3 i t0 # SERVER_PID, PORT, START_SECONDS
    shift 3
    t0=$(date +%s.%N)
    "$WORK/otago-server" --listen "$listen" --data-dir "$data" --log warn "$@" \
        >"$RESULTS/server-$name.out" 2>"$RESULTS/server-$name.err" &
    SERVER_PID=$!
    for ((i = 0; i < 1200; i++)); do
        grep -q 'otago-server listening on' "$RESULTS/server-$name.out" 2>/dev/null && break
        kill -0 "$SERVER_PID" 2>/dev/null || die "otago-server exited, see $RESULTS/server-$name.err"
        sleep 0.05
    done
    START_SECONDS=$(echo "$(date +%s.%N) $t0" | awk '{printf "%.2f", $1 - $2}')
    PORT=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$RESULTS/server-$name.out")
    [ -n "$PORT" ] || die "otago-server did not start within 60 s"
}

log "starting otago-server in demo mode (publishes exports/v1)"
start_server demo "$WORK/data" 127.0.0.1:0 --demo --demo-app-dir "$WORK/app"
BASE=http://127.0.0.1:$PORT
REF=$(sed -n 's/.* as project \(p_[a-z0-9]*\) .*/\1/p' "$RESULTS/server-demo.out")
[ -n "$REF" ] || die "no project ref in the demo output"
log "otago-server pid $SERVER_PID on $BASE, project $REF, up in ${START_SECONDS}s; waiting for asset compression to finish"
wait_idle "$SERVER_PID"
curl -sSf -H "authorization: Bearer $OTAGO_ADMIN_TOKEN" "$BASE/api/v1/projects/$REF/groups?limit=1" >"$WORK/groups.json"
RUNTIME_VERSION=$(json "$WORK/groups.json" 'd["groups"][0]["runtime_version"]')

# The headers expo-updates 57 sends on a manifest request (PROTOCOL.md §2.2), for a device that
# runs its embedded update and has a code-signing certificate configured (keyid "main").
EMBEDDED_ID=4b2e8f6a-1c3d-4e5f-8a9b-0c1d2e3f4a5b
MANIFEST_HEADERS=(
    -H 'Accept: multipart/mixed,application/expo+json,application/json'
    -H "Expo-Platform: $PLATFORM"
    -H 'Expo-Protocol-Version: 1'
    -H 'Expo-API-Version: 1'
    -H 'Expo-Updates-Environment: BARE'
    -H 'Expo-JSON-Error: true'
    -H 'EAS-Client-ID: 5f3c2a1e-7b4d-4e8a-9c2f-1d6e8b3a0f42'
    -H "Expo-Runtime-Version: $RUNTIME_VERSION"
    -H "Expo-Current-Update-ID: $EMBEDDED_ID"
    -H "Expo-Embedded-Update-ID: $EMBEDDED_ID"
    -H 'expo-expect-signature: sig, keyid="main", alg="rsa-v1_5-sha256"'
)
MANIFEST_URL=$BASE/manifest/$REF

# The manifest response, fetched once: its body becomes nginx's static file.
code=$(curl -sS -o "$WORK/www/manifest.bin" -D "$RESULTS/manifest-headers.txt" -w '%{http_code}' "${MANIFEST_HEADERS[@]}" "$MANIFEST_URL")
[ "$code" = 200 ] || die "manifest answered $code"
CONTENT_TYPE=$(awk -F': ' 'tolower($1) == "content-type" {sub(/\r$/, "", $2); print $2}' "$RESULTS/manifest-headers.txt")
grep -q '^expo-signature: sig=' "$WORK/www/manifest.bin" || die "the manifest is not signed"
HASH=$(grep -ao '"launchAsset":{"hash":"[A-Za-z0-9_-]\{43\}"' "$WORK/www/manifest.bin" | cut -d'"' -f6)
[ -n "$HASH" ] || die "no launchAsset hash in the manifest"

# The launch asset, identity encoding: must be the fixture's bundle, byte for byte.
BUNDLE=$FIXTURE/exports/v1/$(json "$FIXTURE/exports/v1/metadata.json" "d['fileMetadata']['$PLATFORM']['bundle']")
curl -sSf -o "$WORK/www/bundle.bin" -D "$RESULTS/bundle-headers.txt" "$BASE/assets/$HASH"
cmp -s "$WORK/www/bundle.bin" "$BUNDLE" || die "/assets/$HASH is not $BUNDLE"
grep -qi '^content-encoding' "$RESULTS/bundle-headers.txt" && die "the asset came compressed"
BUNDLE_TYPE=$(awk -F': ' 'tolower($1) == "content-type" {sub(/\r$/, "", $2); print $2}' "$RESULTS/bundle-headers.txt")
chmod 644 "$WORK/www/"*
log "manifest: $(wc -c <"$WORK/www/manifest.bin") bytes ($CONTENT_TYPE); bundle: $(wc -c <"$BUNDLE") bytes, /assets/$HASH"

# --- nginx on another loopback port ----------------------------------------------------------
NGINX_PORT=$(free_port)
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes $NPROC;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;  # hyper has no such limit: no forced reconnects for nginx either
    client_body_temp_path $WORK/nginx/client_body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    types { }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location = /manifest/$REF {
            alias $WORK/www/manifest.bin;
            default_type "$CONTENT_TYPE";
            add_header expo-protocol-version 1;
            add_header expo-sfv-version 0;
            add_header cache-control "private, max-age=0";
        }
        location = /assets/$HASH {
            alias $WORK/www/bundle.bin;
            default_type "$BUNDLE_TYPE";
            add_header cache-control "public, max-age=31536000, immutable";
        }
    }
}
EOF
"$NGINX" -t -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" 2>"$RESULTS/nginx-t.log" ||
    die "nginx config refused, see $RESULTS/nginx-t.log"
"$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" &
NGINX_PID=$!
NGINX_BASE=http://127.0.0.1:$NGINX_PORT
for ((i = 0; i < 100; i++)); do curl -s -o /dev/null "$NGINX_BASE/" && break; sleep 0.1; done
curl -sSf -o "$WORK/nginx-manifest.bin" "${MANIFEST_HEADERS[@]}" "$NGINX_BASE/manifest/$REF"
cmp -s "$WORK/nginx-manifest.bin" "$WORK/www/manifest.bin" || die "nginx serves other manifest bytes"
curl -sSf -o "$WORK/nginx-bundle.bin" "$NGINX_BASE/assets/$HASH"
cmp -s "$WORK/nginx-bundle.bin" "$BUNDLE" || die "nginx serves other bundle bytes"
log "nginx pid $NGINX_PID on $NGINX_BASE, $NPROC workers"

# --- measuring ---------------------------------------------------------------------------------
to_ms() { # wrk time (850.00us, 1.20ms, 1.02s, 1.00m) -> ms
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
        else printf "nan" }'
}
to_mbs() { # wrk size/s (12.3KB, 1.2GB) -> MB/s (10^6 bytes; wrk's units are 2^10-based)
    awk -v v="$1" 'BEGIN {
        m = 1; if (v ~ /KB$/) m = 1024; if (v ~ /MB$/) m = 1048576; if (v ~ /GB$/) m = 1073741824
        sub(/[KMG]?B$/, "", v); printf "%.1f", v * m / 1e6 }'
}
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat; } # busy idle
busy_pct() { # share of all cores busy over one second
    local b0 i0 b1 i1
    read -r b0 i0 < <(machine_ticks); sleep 1; read -r b1 i1 < <(machine_ticks)
    echo $((100 * (b1 - b0) / (b1 - b0 + i1 - i0 + 1)))
}
wait_quiet() { # prints the busy share once it is at most 10 %, or the last one after QUIET_WAIT s
    local i busy=100
    for ((i = 0; i < QUIET_WAIT; i++)); do
        busy=$(busy_pct)
        ((busy <= 10)) && break
    done
    ((busy <= 10)) || log "the machine is still ${busy} % busy (other work): numbers will be noisy"
    echo "$busy"
}
rss_sampler() { # pid file: the largest VmRSS (kB) and thread count seen, every 0.2 s, ≤ 10 min
    local pid=$1 out=$2 max=0 threads=0 v t i
    for ((i = 0; i < 3000; i++)); do
        v=$(status_kb "$pid" VmRSS 2>/dev/null) || break
        t=$(status_kb "$pid" Threads 2>/dev/null) || break
        [ -n "$v" ] && ((v > max)) && max=$v
        [ -n "$t" ] && ((t > threads)) && threads=$t
        echo "$max $threads" >"$out"
        sleep 0.2
    done
}

# One line per run in summary.tsv:
# name round server req/s p50 p90 p99 max MB/s errors server-cores machine-busy-cores busy%-before rss-peak-kB hwm-kB
printf 'name\tround\tserver\trps\tp50\tp90\tp99\tmax\tmbs\terrors\tcores\tmachine\tbusy_before\trss_kb\thwm_kb\tthreads\n' >"$RESULTS/summary.tsv"
ROUND=0
run_wrk() { # name server(otago|nginx) url [wrk args...]
    local name=$1 server=$2 url=$3 pids t0 t1 c0 c1 m0 m1 busy rss=- hwm=- threads=- out
    shift 3
    out=$RESULTS/wrk-$name-$ROUND.txt
    case $server in
        otago) pids=("$SERVER_PID") ;;
        fresh) pids=("$FRESH_PID") ;;
        nginx) pids=("$NGINX_PID" $(pgrep -P "$NGINX_PID")) ;;
    esac
    busy=$(wait_quiet)
    log "$name (round $ROUND/$ROUNDS): warm-up $WARMUP"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$@" "$url" >/dev/null
    if [ "$server" != nginx ]; then
        echo 5 >"/proc/${pids[0]}/clear_refs" 2>/dev/null || log "cannot reset VmHWM: it is the lifetime peak"
        rm -f "$WORK/rss-max"
        rss_sampler "${pids[0]}" "$WORK/rss-max" &
        SAMPLER_PID=$!
    fi
    log "$name: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency $url (machine ${busy} % busy before)"
    c0=$(cpu_ticks "${pids[@]}"); read -r m0 _ < <(machine_ticks); t0=$(date +%s.%N)
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url" >"$out"
    t1=$(date +%s.%N); c1=$(cpu_ticks "${pids[@]}"); read -r m1 _ < <(machine_ticks)
    if [ "$server" != nginx ]; then
        stop_pid "$SAMPLER_PID" TERM 2; SAMPLER_PID=''
        read -r rss threads <"$WORK/rss-max" || true
        hwm=$(status_kb "${pids[0]}" VmHWM)
    fi
    local rps p50 p90 p99 max mbs errors cores machine
    rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
    p90=$(to_ms "$(awk '$1 == "90%" {print $2}' "$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
    max=$(to_ms "$(awk '$1 == "Latency" {print $4; exit}' "$out")")
    mbs=$(to_mbs "$(awk '/^Transfer\/sec:/ {print $2}' "$out")")
    errors=$(awk '/^  Socket errors:/ {gsub(",", ""); e += $4 + $6 + $8 + $10} /^  Non-2xx/ {e += $5} END {print e + 0}' "$out")
    cores=$(echo "$c0 $c1 $t0 $t1 $CLK_TCK" | awk '{printf "%.2f", ($2 - $1) / $5 / ($4 - $3)}')
    machine=$(echo "$m0 $m1 $t0 $t1 $CLK_TCK" | awk '{printf "%.2f", ($2 - $1) / $5 / ($4 - $3)}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$ROUND" "$server" "$rps" "$p50" "$p90" \
        "$p99" "$max" "$mbs" "$errors" "$cores" "$machine" "$busy" "${rss:--}" "$hwm" "${threads:--}" >>"$RESULTS/summary.tsv"
    log "$name: $rps req/s, p50 $p50 ms, p99 $p99 ms, $mbs MB/s, errors $errors, server CPU $cores of $machine busy cores, peak RSS ${rss:--} kB, ${threads:--} threads"
}

RSS_IDLE=$(status_kb "$SERVER_PID" VmRSS)
HWM_START=$(status_kb "$SERVER_PID" VmHWM)
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do # manifests first: their RSS is not the bundles'
    run_wrk manifest-otago otago "$MANIFEST_URL" "${MANIFEST_HEADERS[@]}"
    run_wrk manifest-nginx nginx "$NGINX_BASE/manifest/$REF" "${MANIFEST_HEADERS[@]}"
done
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    run_wrk bundle-otago otago "$BASE/assets/$HASH"
    run_wrk bundle-nginx nginx "$NGINX_BASE/assets/$HASH"
done
RSS_AFTER_LOAD=$(status_kb "$SERVER_PID" VmRSS)

# --- e. the same with 10,000 published updates in the store ---------------------------------
log "publishing $UPDATES updates through the API"
python3 "$HERE/publish_many.py" --base-url "$BASE" --token "$OTAGO_ADMIN_TOKEN" --project "$REF" \
    --key "$FIXTURE/keys/private-key.pem" --cert "$FIXTURE/certs/certificate.pem" \
    --updates "$UPDATES" >"$RESULTS/publish_many.json" 2>"$RESULTS/publish_many.log" ||
    die "publish_many failed, see $RESULTS/publish_many.log"
cat "$RESULTS/publish_many.log" >&2
NEWEST_ID=$(json "$RESULTS/publish_many.json" "d['measured_newest_ids']['$PLATFORM']")
check_newest() { # the measured channel must now answer with its newest bulk-published update
    curl -sS -o "$WORK/manifest-now.bin" "${MANIFEST_HEADERS[@]}" "$MANIFEST_URL"
    grep -q "\"id\":\"$NEWEST_ID\"" "$WORK/manifest-now.bin" || die "the manifest is not the newest update $NEWEST_ID"
    [ "$(wc -c <"$WORK/manifest-now.bin")" = "$(wc -c <"$WORK/www/manifest.bin")" ] ||
        log "note: the manifest body size changed ($(wc -c <"$WORK/manifest-now.bin") bytes)"
}
check_newest
wait_idle "$SERVER_PID"
RSS_10K=$(status_kb "$SERVER_PID" VmRSS)
# The reference for (e), measured at the same time: a second otago-server whose store holds
# only the demo's update (drift of this shared machine over minutes is larger than the effect).
MAIN_PID=$SERVER_PID MAIN_PORT=$PORT
start_server fresh "$WORK/data-fresh" 127.0.0.1:0 --demo --demo-app-dir "$WORK/app"
FRESH_PID=$SERVER_PID FRESH_PORT=$PORT SERVER_PID=$MAIN_PID PORT=$MAIN_PORT
FRESH_REF=$(sed -n 's/.* as project \(p_[a-z0-9]*\) .*/\1/p' "$RESULTS/server-fresh.out")
FRESH_URL=http://127.0.0.1:$FRESH_PORT/manifest/$FRESH_REF
wait_idle "$FRESH_PID"
code=$(curl -sS -o "$WORK/manifest-fresh.bin" -w '%{http_code}' "${MANIFEST_HEADERS[@]}" "$FRESH_URL")
[ "$code" = 200 ] && [ "$(wc -c <"$WORK/manifest-fresh.bin")" = "$(wc -c <"$WORK/www/manifest.bin")" ] ||
    die "the fresh server's manifest differs in size"
log "reference otago-server (store with only the demo update) pid $FRESH_PID on port $FRESH_PORT"
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    run_wrk manifest-otago-10k otago "$MANIFEST_URL" "${MANIFEST_HEADERS[@]}"
    run_wrk manifest-fresh fresh "$FRESH_URL" "${MANIFEST_HEADERS[@]}"
done

log "restarting both otago-servers: the one with the updates loads every channel from SQLite"
stop_pid "$SERVER_PID" TERM 15
stop_pid "$FRESH_PID" TERM 15
start_server restart "$WORK/data" "127.0.0.1:$MAIN_PORT" --public-url "$BASE"
RESTART_SECONDS=$START_SECONDS MAIN_PID=$SERVER_PID
start_server fresh-restart "$WORK/data-fresh" "127.0.0.1:$FRESH_PORT"
FRESH_PID=$SERVER_PID SERVER_PID=$MAIN_PID PORT=$MAIN_PORT
check_newest
wait_idle "$SERVER_PID"
RSS_RESTART=$(status_kb "$SERVER_PID" VmRSS)
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    run_wrk manifest-otago-10k-restarted otago "$MANIFEST_URL" "${MANIFEST_HEADERS[@]}"
    run_wrk manifest-fresh-restarted fresh "$FRESH_URL" "${MANIFEST_HEADERS[@]}"
done
DB_BYTES=$(du -cb "$WORK/data"/otago.sqlite3* | tail -1 | cut -f1)

# --- summary ---------------------------------------------------------------------------------
python3 "$HERE/summary.py" "$RESULTS" "$RSS_IDLE" "$HWM_START" "$RSS_AFTER_LOAD" "$RSS_10K" "$RSS_RESTART" \
    "$RESTART_SECONDS" "$DB_BYTES" "$CONNECTIONS" "$NPROC" | tee "$RESULTS/summary.md"
