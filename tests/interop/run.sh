#!/usr/bin/env bash
# Interop suite: camfleet against third-party peers (see ../../shared/PEERS.md).
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

say "build (outside the namespace; it has no network)"
cargo build --offline --tests -q

NS="camfleet-interop-$$"
cleanup() { ip netns del "$NS" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" ip route add 239.0.0.0/8 dev lo src 127.0.0.1

say "interop tests in namespace $NS (loopback only)"
ip netns exec "$NS" env CAMFLEET_PEER_PYTHON="$P/venv/bin/python" \
  cargo test --offline --test interop_wsdiscovery -- --ignored --test-threads=1
