#!/usr/bin/env bash
# Adopt benchmark: camfleet and onvif-zeep-async side by side, same run, same
# simulated fleet (in its own process, so its CPU is not counted).
#   benches/adopt.sh [COUNT] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}; C=${2:-64}; BASE=20000
P=$PWD/target/peers
[ -x "$P/venv/bin/python" ] || python3 -m venv "$P/venv"
"$P/venv/bin/pip" install -q --disable-pip-version-check onvif-zeep-async==4.3.0
cargo build --release -q
bin=target/release/camfleet
# zeep's Created carries microseconds; lenient-created keeps the comparison fair.
$bin simulate --count "$N" --base-port $BASE --wsd-port 0 --quirks lenient-created > target/bench-sim.log 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "simulated cameras" target/bench-sim.log && break; sleep 0.1; done
echo "== camfleet"; $bin bench adopt --count "$N" --base-port $BASE --concurrency "$C"
echo "== onvif-zeep-async"; "$P/venv/bin/python" benches/zeep_adopt.py --count "$N" --base-port $BASE --concurrency "$C"
