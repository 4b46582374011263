#!/usr/bin/env bash
# Flood: anonymous manifest requests with made-up runtime versions, update ids, client ids and
# project refs against otago-server on loopback, by hand, not CI. What BENCHMARKS.md records.
#
# A release build serves the demo project from a temporary data folder; wrk (THREADS threads,
# CONNECTIONS connections, DURATION, flood.lua) sends the requests. It prints RSS before and
# after (VmRSS, and the peak VmHWM, from /proc/<pid>/status), the SQLite files' size after the
# final flush (SIGTERM, then the server exits), the size of the owner's adoption and
# runtime-versions JSON (read after a restart on the same data), and wrk's summary.
#
# Run:   benches/load/flood.sh             (DURATION=60s by default, plus the release build)
# Knobs: DURATION=60s CONNECTIONS=8 THREADS=2 BIN=<otago-server binary>
# Needs wrk and curl (apt-get install wrk curl). All traffic goes to 127.0.0.1; everything
# started is stopped on exit.

set -euo pipefail

DURATION=${DURATION:-60s}
CONNECTIONS=${CONNECTIONS:-8}
THREADS=${THREADS:-2}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ADMIN=otago_admin_flood_benchmark_token_0123456789

log() { printf '[flood %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

command -v wrk >/dev/null || die "wrk is missing (apt-get install wrk)"
command -v curl >/dev/null || die "curl is missing (apt-get install curl)"

if [ -z "${BIN:-}" ]; then
    log "building otago-server (release)"
    (cd "$ROOT" && cargo build --release -p otago-server) >/dev/null 2>&1 || die "cargo build failed"
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/otago-server
fi

WORK=$(mktemp -d /tmp/otago-flood.XXXXXX)
PID=''
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

# Starts the server on the data folder; sets PID, PORT and PROJECT.
start() {
    OTAGO_ADMIN_TOKEN=$ADMIN "$BIN" --listen 127.0.0.1:0 --log warn --demo \
        --demo-app-dir "$ROOT/examples/expo-app" --data-dir "$WORK/data" >"$WORK/out" 2>"$WORK/err" &
    PID=$!
    for _ in $(seq 100); do
        grep -q 'listening on' "$WORK/out" 2>/dev/null && break
        sleep 0.1
    done
    PORT=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/out")
    PROJECT=$(grep -o '/manifest/p_[a-z0-9]*' "$WORK/out" | head -1 | cut -d/ -f3)
    [ -n "$PORT" ] && [ -n "$PROJECT" ] || die "the server did not start: $(cat "$WORK/err")"
}
stop() {
    kill -TERM "$PID"
    wait "$PID" || die "the server exited with an error"
    PID=''
}
rss_kib() { awk -v what="$2:" '$1 == what { print $2 }' "/proc/$1/status"; }
sqlite_kib() { du -ck "$WORK/data"/*.sqlite3* | tail -1 | cut -f1; }

start
log "demo project $PROJECT on port $PORT"
RSS_BEFORE=$(rss_kib "$PID" VmRSS)
SQLITE_BEFORE=$(sqlite_kib)
log "flooding for $DURATION ($CONNECTIONS connections, $THREADS threads)"
PROJECT=$PROJECT wrk -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" -s "$HERE/flood.lua" \
    "http://127.0.0.1:$PORT" >"$WORK/wrk.txt"
RSS_AFTER=$(rss_kib "$PID" VmRSS)
RSS_PEAK=$(rss_kib "$PID" VmHWM)
stop
SQLITE_AFTER=$(sqlite_kib)

start
ADOPTION_BYTES=$(curl -sf -H "authorization: Bearer $ADMIN" \
    "http://127.0.0.1:$PORT/api/v1/projects/$PROJECT/adoption" | wc -c)
FLEET_BYTES=$(curl -sf -H "authorization: Bearer $ADMIN" \
    "http://127.0.0.1:$PORT/api/v1/projects/$PROJECT/runtime-versions" | wc -c)
RSS_READING=$(rss_kib "$PID" VmHWM)
stop

cat "$WORK/wrk.txt"
cat <<SUMMARY
RSS before          ${RSS_BEFORE} KiB
RSS after           ${RSS_AFTER} KiB (peak ${RSS_PEAK} KiB)
SQLite before       ${SQLITE_BEFORE} KiB
SQLite after        ${SQLITE_AFTER} KiB (after the final flush)
adoption JSON       ${ADOPTION_BYTES} bytes
runtime-versions    ${FLEET_BYTES} bytes
RSS peak, reading   ${RSS_READING} KiB (restarted, both reads)
SUMMARY
