#!/usr/bin/env bash
# The soak: `camfleet serve` over a simulated fleet for an hour, polled
# every 10 s, 20 % of the cameras misbehaving after adoption (hang, garbage,
# refused password, 100 MB body, endless body, clock an hour off), two of
# the others recorded, every alert sent to a webhook. Samples RSS, open
# file descriptors, polls, deliveries and segments every 30 s, then checks:
# RSS growth after minute 10 at most 5 % (by the least-squares line through
# every sample; the two 5-minute means are printed too), descriptors flat
# (the mean of the last 10 minutes within 8 of the first 10's), every cycle
# on time, every camera in the state its misbehaviour calls for.
#
#   benches/soak.sh [MINUTES] [CAMERAS] [MISBEHAVE_PERCENT]
#
# As root: it runs itself inside a fresh loopback-only network namespace, so
# nothing it sends can leave the machine. Release build first (or it builds).
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-60}
CAMERAS=${2:-1000}
MIS=${3:-20}
if [ -z "${SOAK_IN_NS:-}" ]; then
  NS=camfleet-soak-$$
  ip netns add "$NS"
  trap 'ip netns del "$NS" 2>/dev/null || true' EXIT
  ip netns exec "$NS" ip link set lo up
  [ -x "${CARGO_TARGET_DIR:-$PWD/target}/release/camfleet" ] || cargo build --release -q
  SOAK_IN_NS=1 ip netns exec "$NS" "$0" "$@"
  exit $?
fi

BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/camfleet"
D=$(mktemp -d /tmp/camfleet-soak.XXXXXX)
OUT=${SOAK_OUT:-target/soak}
mkdir -p "$OUT"
BASE=21000
WEB=18800
HOOK=18801
ulimit -n "$(ulimit -Hn)"
pids=()
cleanup() {
  for p in "${pids[@]}" ${sim:-}; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$D"
}
trap cleanup EXIT

start_sim() { # $1: misbehave percent
  "$BIN" simulate --count "$CAMERAS" --base-port $BASE --wsd-port 0 --misbehave "$1" \
    > "$OUT/sim.log" 2>&1 &
  sim=$!
  for _ in $(seq 300); do grep -q "simulated cameras" "$OUT/sim.log" && return; sleep 0.1; done
  echo "simulator did not start"; cat "$OUT/sim.log"; exit 1
}
start_sim 0
echo "$sim" > "$D/sim.pid"

# The webhook: counts POSTs, answers 204.
python3 - "$HOOK" "$D/hooks" <<'PY' > "$OUT/webhook.log" 2>&1 &
import http.server, sys
port, path = int(sys.argv[1]), sys.argv[2]
n = 0
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global n
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        n += 1
        open(path, "w").write(str(n))
        self.send_response(204); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
pids+=($!)

printf 'soak-admin-password\n' > "$D/pw"
"$BIN" user add soak --admin --password-file "$D/pw" --data-dir "$D/data" >/dev/null
TOKEN=$("$BIN" token create soak --name soak --data-dir "$D/data" | tail -1)
# SOAK_SERVE_BIN / SOAK_WRAP: another build of serve, under a profiler
# (e.g. a `--features system-alloc` build under `heaptrack -o FILE`).
${SOAK_WRAP:-} "${SOAK_SERVE_BIN:-$BIN}" serve --data-dir "$D/data" --listen 127.0.0.1:$WEB \
  --poll-interval 10 > "$OUT/serve.log" 2>&1 &
srv=$!
pids+=($srv)
for _ in $(seq 300); do curl -fsS "http://127.0.0.1:$WEB/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
# The serving process itself (under a profiler, a child of it).
srv=$(pgrep -f "^${SOAK_SERVE_BIN:-$BIN} serve --data-dir $D/data" | head -1)
pids+=($srv)

restart="kill \$(cat $D/sim.pid); while kill -0 \$(cat $D/sim.pid) 2>/dev/null; do sleep 0.1; done; \
  '$BIN' simulate --count $CAMERAS --base-port $BASE --wsd-port 0 --misbehave $MIS > $OUT/sim.log 2>&1 & \
  echo \$! > $D/sim.pid; for i in \$(seq 300); do grep -q 'simulated cameras' $OUT/sim.log && break; sleep 0.1; done"
set +e
python3 benches/soak.py --port $WEB --token "$TOKEN" --pid $srv --cameras "$CAMERAS" \
  --base-port $BASE --misbehave "$MIS" --minutes "$MINUTES" --hook-port $HOOK \
  --hook-count "$D/hooks" --data-dir "$D/data" --restart-sim "$restart" --samples "$OUT/samples.csv"
rc=$?
sim=$(cat "$D/sim.pid")
exit $rc
