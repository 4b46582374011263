#!/usr/bin/env bash
# Instructions per manifest request: otago-server under valgrind's callgrind, by hand, not CI.
#
# wrk's req/s on a shared VM move by ±10 % between rounds; instruction counts do not. This counts
# the user-space instructions (otago-server, hyper, tokio, libc) the server executes per manifest
# request, the same request as run.sh's (a): the headers expo-updates sends, answered with the
# fixture's signed exports/v1 update. Kernel work (TCP, syscalls) is not counted: run.sh measures it.
#
# How: a release build publishes the demo once (natively, in a temporary data folder), is stopped,
# and is started again under callgrind on that folder. One keep-alive client sends WARMUP requests,
# the counters are zeroed (callgrind_control -z), it sends REQUESTS more, the counters are dumped,
# and the dump's total is divided by REQUESTS. Repeat runs of one binary agree within 1 %.
#
# Run:   benches/load/instructions.sh            (≈ 1 minute plus the release build)
# Knobs: REQUESTS=4000 WARMUP=300 TOP=25 (functions listed by their own instructions)
#        BIN=<otago-server binary> to measure a given build instead of building this checkout
#        FIXTURE=<repo>/examples/expo-app
# Needs valgrind (callgrind_control, from Debian's valgrind package) and python3.

set -euo pipefail

REQUESTS=${REQUESTS:-4000}
WARMUP=${WARMUP:-300}
TOP=${TOP:-25}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
FIXTURE=$(cd "${FIXTURE:-$ROOT/examples/expo-app}" && pwd)

log() { printf '[instructions %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

command -v callgrind_control >/dev/null ||
    apt-get install -y valgrind >/dev/null ||
    die "valgrind is missing (apt-get install valgrind)"

if [ -z "${BIN:-}" ]; then
    log "building otago-server (release)"
    (cd "$ROOT" && cargo build --release -p otago-server) >/dev/null 2>&1 || die "cargo build failed"
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/otago-server
fi

WORK=$(mktemp -d /tmp/otago-instructions.XXXXXX)
PID=''
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/app"
for item in app.json expo-config.public.json keys certs; do ln -s "$FIXTURE/$item" "$WORK/app/$item"; done
ln -s "$FIXTURE/exports/v1" "$WORK/app/dist"
OTAGO_ADMIN_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export OTAGO_ADMIN_TOKEN

wait_listening() { # out-file: the port once the server says it listens
    local i
    for ((i = 0; i < 600; i++)); do
        grep -q 'otago-server listening on' "$1" 2>/dev/null && break
        kill -0 "$PID" 2>/dev/null || die "otago-server exited, see $1 and ${1%.out}.err"
        sleep 0.1
    done
    sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$1"
}

wait_idle() { # until the pid uses < 2 % of a core for 2 s in a row (at most 120 s)
    local quiet=0 i a b tick
    tick=$(getconf CLK_TCK)
    for ((i = 0; i < 120 && quiet < 2; i++)); do
        a=$(awk '{print $14 + $15}' "/proc/$1/stat"); sleep 1; b=$(awk '{print $14 + $15}' "/proc/$1/stat")
        if ((b - a <= tick / 50)); then quiet=$((quiet + 1)); else quiet=0; fi
    done
}

log "publishing the demo update natively"
"$BIN" --listen 127.0.0.1:0 --data-dir "$WORK/data" --log warn --demo --demo-app-dir "$WORK/app" \
    >"$WORK/demo.out" 2>"$WORK/demo.err" &
PID=$!
PORT=$(wait_listening "$WORK/demo.out")
REF=$(sed -n 's/.* as project \(p_[a-z0-9]*\) .*/\1/p' "$WORK/demo.out")
RUNTIME_VERSION=$(curl -sSf -H "authorization: Bearer $OTAGO_ADMIN_TOKEN" \
    "http://127.0.0.1:$PORT/api/v1/projects/$REF/groups?limit=1" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["groups"][0]["runtime_version"])')
wait_idle "$PID" # the demo compresses its assets in the background: let it finish
kill -TERM "$PID"
wait "$PID" || true

log "starting it again under callgrind"
valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out" \
    "$BIN" --listen 127.0.0.1:0 --data-dir "$WORK/data" --log warn \
    >"$WORK/callgrind.out.log" 2>"$WORK/callgrind.err" &
PID=$!
PORT=$(wait_listening "$WORK/callgrind.out.log")

client() { # requests: GET /manifest/<ref> over one keep-alive connection, each must be a 200
    python3 - "$PORT" "$REF" "$RUNTIME_VERSION" "$1" <<'EOF'
import http.client, sys
port, ref, runtime_version, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
embedded = "4b2e8f6a-1c3d-4e5f-8a9b-0c1d2e3f4a5b"
headers = {  # what expo-updates sends (PROTOCOL.md §2.2), as in run.sh
    "Accept": "multipart/mixed,application/expo+json,application/json",
    "Expo-Platform": "android", "Expo-Protocol-Version": "1", "Expo-API-Version": "1",
    "Expo-Updates-Environment": "BARE", "Expo-JSON-Error": "true",
    "EAS-Client-ID": "5f3c2a1e-7b4d-4e8a-9c2f-1d6e8b3a0f42",
    "Expo-Runtime-Version": runtime_version,
    "Expo-Current-Update-ID": embedded, "Expo-Embedded-Update-ID": embedded,
    "expo-expect-signature": 'sig, keyid="main", alg="rsa-v1_5-sha256"',
}
connection = http.client.HTTPConnection("127.0.0.1", int(port))
for _ in range(count):
    connection.request("GET", "/manifest/" + ref, headers=headers)
    response = connection.getresponse()
    body = response.read()
    if response.status != 200 or b"expo-signature" not in body:
        sys.exit(f"manifest answered {response.status}: {body[:200]!r}")
EOF
}

client "$WARMUP"
callgrind_control -z "$PID" >/dev/null 2>&1
client "$REQUESTS"
callgrind_control -d "$PID" >/dev/null 2>&1
DUMP=$(ls "$WORK"/callgrind.out.*[0-9] 2>/dev/null | head -1)
[ -n "$DUMP" ] || die "callgrind wrote no dump"

python3 - "$DUMP" "$REQUESTS" "$TOP" <<'EOF'
import collections, re, sys
path, requests, top = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
names, own, function, call_line = {}, collections.Counter(), None, False
for line in open(path):
    named = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?", line)
    if named:
        kind, number, name = named.groups()
        if name:
            names[number] = name
        if kind == "fn":
            function = number
        continue
    if line.startswith("calls="):
        call_line = True  # the next cost line is the callee's, not this function's own
        continue
    cost = re.match(r"^(?:[+-]?\d+|\*) (\d+)", line)
    if cost and function:
        if not call_line:
            own[function] += int(cost.group(1))
        call_line = False
total = sum(own.values())
print(f"{total / requests:,.0f} instructions per manifest request ({requests} requests)")
print(f"\ntop {top} functions by their own instructions per request:")
for number, count in own.most_common(top):
    print(f"{count / requests:9,.0f}  {100 * count / total:5.1f} %  {names.get(number, number)[:110]}")
EOF
