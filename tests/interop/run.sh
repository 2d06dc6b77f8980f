#!/usr/bin/env bash
# Interop suite: camfleet against third-party peers (see ../../shared/PEERS.md):
# Python wsdiscovery, and PostgreSQL for the database tests.
# Installs the peers it needs into target/peers, then runs the ignored
# interop tests inside a fresh loopback-only network namespace, because the
# peers multicast and choose their own interfaces.
#
#   tests/interop/run.sh            (as root: creates and removes the namespace)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
P="$root/target/peers"
mkdir -p "$P"

say() { printf '\n== %s\n' "$*"; }

say "peers: Python wsdiscovery 2.1.2"
if [ ! -x "$P/venv/bin/python" ]; then
  python3 -m venv "$P/venv" || { apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv "$P/venv"; }
fi
"$P/venv/bin/pip" install -q --disable-pip-version-check wsdiscovery==2.1.2

say "peers: Chromium and ChromeDriver (Debian) for the browser test"
if ! command -v chromedriver >/dev/null || [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
fi

say "build (outside the namespace; it has no network)"
cargo build --offline --tests -q

say "peers: PostgreSQL (throw-away cluster)"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$PGBIN" ]; then
  apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
# Outside the checkout: the postgres user must be able to reach it.
PG=$(mktemp -d /tmp/camfleet-pg.XXXXXX)
chmod 755 "$PG" && chown postgres "$PG"
su postgres -c "$PGBIN/initdb -D $PG/data -A trust -U postgres --no-sync" >/dev/null

NS="camfleet-interop-$$"
cleanup() {
  su postgres -c "$PGBIN/pg_ctl -D $PG/data -m immediate -w stop" >/dev/null 2>&1 || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$PG"
}
trap cleanup EXIT
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" ip route add 239.0.0.0/8 dev lo src 127.0.0.1

say "PostgreSQL 127.0.0.1:5433 inside the namespace"
ip netns exec "$NS" su postgres -c "$PGBIN/pg_ctl -D $PG/data -l $PG/pg.log -o '-c listen_addresses=127.0.0.1 -p 5433 -k $PG -c fsync=off' -w start" >/dev/null

say "interop tests in namespace $NS (loopback only)"
ip netns exec "$NS" env CAMFLEET_PEER_PYTHON="$P/venv/bin/python" \
  cargo test --offline --test interop_wsdiscovery -- --ignored --test-threads=1

say "browser test: headless Chromium against the real server and a simulated fleet"
ip netns exec "$NS" cargo test --offline --test browser -- --ignored --test-threads=1

say "database tests against PostgreSQL"
ip netns exec "$NS" env CAMFLEET_TEST_PG="postgres://postgres@127.0.0.1:5433/postgres" \
  cargo test --offline --test inventory --test users --test web
