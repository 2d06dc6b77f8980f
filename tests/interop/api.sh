#!/usr/bin/env bash
# The JSON API checked by third-party tools against a live server:
# openapi-spec-validator on the document, then schemathesis over every
# operation with an admin token (no 5xx; every response matches its
# schema). camfleet runs its demo (a simulated fleet, adopted) inside a
# loopback-only network namespace made here, because the demo multicasts.
#
#   tests/interop/api.sh        (as root; after `cargo build`)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
P="$root/target/peers"
BIN="${CARGO_TARGET_DIR:-$root/target}/debug/camfleet"
mkdir -p "$P"
say() { printf '\n== %s\n' "$*"; }

say "peers: schemathesis 4.32.5 and openapi-spec-validator 0.9.0 (PyPI)"
if [ ! -x "$P/api-venv/bin/python" ]; then
  python3 -m venv "$P/api-venv" || { apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv "$P/api-venv"; }
fi
"$P/api-venv/bin/pip" install -q --disable-pip-version-check schemathesis==4.32.5 openapi-spec-validator==0.9.0

NS="camfleet-api-$$"
D=$(mktemp -d)
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$D"
}
trap cleanup EXIT
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" ip route add 239.0.0.0/8 dev lo src 127.0.0.1

say "camfleet demo (8 cameras) in $NS"
ip netns exec "$NS" "$BIN" demo --cameras 8 --data-dir "$D/data" --listen 127.0.0.1:18600 \
  --base-port 18610 > "$D/demo.log" 2>&1 &
pid=$!
for _ in $(seq 1 120); do
  if ip netns exec "$NS" curl -fsS http://127.0.0.1:18600/healthz >/dev/null 2>&1; then break; fi
  kill -0 "$pid" 2>/dev/null || { cat "$D/demo.log"; exit 1; }
  sleep 0.5
done
echo "a-long-ci-password-1" > "$D/pw"
ip netns exec "$NS" "$BIN" user add ci-admin --admin --password-file "$D/pw" --data-dir "$D/data" >/dev/null
TOKEN=$(ip netns exec "$NS" "$BIN" token create ci-admin --name schemathesis --data-dir "$D/data")

say "openapi-spec-validator on /api/openapi.json (fetched without a login)"
ip netns exec "$NS" curl -fsS http://127.0.0.1:18600/api/openapi.json > "$D/openapi.json"
"$P/api-venv/bin/openapi-spec-validator" "$D/openapi.json" 2>&1 | cut -c1-600

say "schemathesis over every operation"
status=0
ip netns exec "$NS" "$P/api-venv/bin/st" run http://127.0.0.1:18600/api/openapi.json \
  --header "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,response_schema_conformance,content_type_conformance \
  --max-examples "${ST_MAX_EXAMPLES:-25}" \
  --workers 4 \
  --request-timeout 20 \
  --seed 13 \
  --no-color > "$D/st.log" 2>&1 || status=$?
[ -n "${ST_LOG:-}" ] && cp "$D/st.log" "$ST_LOG"
if [ "$status" -ne 0 ]; then
  sed -n '/FAILURES/,$p' "$D/st.log" | head -150
  echo "schemathesis found problems (exit $status); the demo's log:"; tail -40 "$D/demo.log"
  exit "$status"
fi
tail -30 "$D/st.log"
say "API checks passed"
