#!/usr/bin/env bash
# Three `camfleet serve` nodes on one PostgreSQL and one SeaweedFS bucket
# against 40 simulated cameras (issue 18). Adopts through one node, checks
# that the three share the cameras, kills the node leading jobs with
# SIGKILL, and checks that the others hold every camera within 30 s and
# take over the leadership; the simulator's counters show that no camera
# was polled or recorded by two nodes at once. Everything runs inside a
# loopback-only network namespace made here.
#
#   tests/interop/cluster.sh      (as root; after `cargo build`; the
#                                  interop suite installs SeaweedFS)
#
# As the benchmark of BENCHMARKS.md ("Three nodes"): CAMERAS=10000
# INTERVAL=60 WINDOWS=2 CLUSTER_BIN=target/release/camfleet.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
P="$root/target/peers"
BIN="${CLUSTER_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/camfleet}"
say() { printf '\n== %s\n' "$*"; }
CAMERAS=${CAMERAS:-40}
INTERVAL=${INTERVAL:-10}
WINDOWS=${WINDOWS:-6}
BASE=20000

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$PGBIN" ]; then
  apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
WEED="$P/venv/bin/weed"
if [ ! -x "$WEED" ]; then
  if [ -n "${CI:-}" ]; then echo "SeaweedFS missing ($WEED): run tests/interop/run.sh first"; exit 1; fi
  WEED=""
fi

NS="camfleet-cluster-$$"
D=$(mktemp -d /tmp/camfleet-cluster.XXXXXX)
chmod 755 "$D"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  su postgres -c "$PGBIN/pg_ctl -D $D/pg -m immediate -w stop" >/dev/null 2>&1 || true
  ip netns del "$NS" 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "kept $D"; else rm -rf "$D"; fi
}
trap cleanup EXIT
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up

say "PostgreSQL on 127.0.0.1:5434 in $NS"
chown postgres "$D"
su postgres -c "$PGBIN/initdb -D $D/pg -A trust -U postgres --no-sync" >/dev/null
ip netns exec "$NS" su postgres -c "$PGBIN/pg_ctl -D $D/pg -l $D/pg.log -o '-c listen_addresses=127.0.0.1 -p 5434 -k $D -c fsync=off' -w start" >/dev/null
ip netns exec "$NS" su postgres -c "psql -h 127.0.0.1 -p 5434 -U postgres -qc 'CREATE DATABASE fleet'"
DB="postgres://postgres@127.0.0.1:5434/fleet"

STORAGE=()
if [ -n "$WEED" ]; then
  say "SeaweedFS S3 on 127.0.0.1:8334: one bucket for every node"
  cat > "$D/s3.json" <<'JSON'
{"identities":[{"name":"fleet","credentials":[{"accessKey":"fleetkey","secretKey":"fleetsecret"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
  mkdir -p "$D/weed"
  ip netns exec "$NS" "$WEED" mini -dir="$D/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port=8334 \
    -master.port=9334 -volume.port=8081 -filer.port=8889 \
    -s3.config="$D/s3.json" -admin.ui=false -master.telemetry=false -master.telemetry.url=http://127.0.0.1:9/ \
    >"$D/weed.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do ip netns exec "$NS" curl -s -o /dev/null http://127.0.0.1:8334/ 2>/dev/null && break; sleep 0.1; done
  for _ in $(seq 50); do
    echo "s3.bucket.create -name cluster" | ip netns exec "$NS" "$WEED" shell -master=127.0.0.1:9334 2>&1 \
      | grep -q "created bucket" && break
    sleep 0.2
  done
  STORAGE=(--storage-url "s3://cluster?endpoint=http://127.0.0.1:8334")
  export AWS_ACCESS_KEY_ID=fleetkey AWS_SECRET_ACCESS_KEY=fleetsecret
fi

ulimit -n "$(ulimit -Hn)"
say "$CAMERAS simulated cameras (HTTP from $BASE, RTSP 19190)"
ip netns exec "$NS" "$BIN" simulate --count "$CAMERAS" --base-port $BASE --rtsp-port 19190 --wsd-port 0 \
  >"$D/sim.log" 2>&1 &
pids+=($!)

say "three nodes: node-a, node-b, node-c (one secret key, one database, one bucket)"
# Every node must hold the same secret key (camera passwords are sealed
# with it): the first node's key file goes to the others.
key=$(head -c 32 /dev/urandom | base64)
export CAMFLEET_SECRET_KEY="$key"
ports=(19301 19302 19303)
names=(node-a node-b node-c)
for i in 0 1 2; do
  mkdir -p "$D/${names[$i]}"
  ip netns exec "$NS" "$BIN" serve --data-dir "$D/${names[$i]}" --database-url "$DB" "${STORAGE[@]}" \
    --listen "127.0.0.1:${ports[$i]}" --node-name "${names[$i]}" --poll-interval "$INTERVAL" \
    >"$D/${names[$i]}.log" 2>&1 &
  pids+=($!)
  echo "${names[$i]} ${ports[$i]} $!" >> "$D/nodes"
done
for p in "${ports[@]}"; do
  for _ in $(seq 240); do
    ip netns exec "$NS" curl -fsS "http://127.0.0.1:$p/healthz" >/dev/null 2>&1 && break
    sleep 0.25
  done
done
echo "a-long-cluster-password-1" > "$D/pw"
ip netns exec "$NS" "$BIN" user add ci-admin --admin --password-file "$D/pw" --database-url "$DB" \
  --data-dir "$D/node-a" >/dev/null
TOKEN=$(ip netns exec "$NS" "$BIN" token create ci-admin --name cluster --database-url "$DB" \
  --data-dir "$D/node-a" | tail -1)

say "adopt through node-a, share, kill the leader, fail over"
status=0
ip netns exec "$NS" python3 tests/interop/cluster.py --nodes "$D/nodes" --token "$TOKEN" \
  --cameras "$CAMERAS" --base-port $BASE --interval "$INTERVAL" --windows "$WINDOWS" \
  --out "${CLUSTER_OUT:-$D/result.txt}" || status=$?
if [ "$status" -ne 0 ]; then
  for n in "${names[@]}"; do echo "--- $n (last lines)"; tail -15 "$D/$n.log"; done
  exit "$status"
fi
