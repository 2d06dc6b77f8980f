#!/usr/bin/env bash
# Fuzz targets for a while each and print one table row per target:
#   fuzz/run.sh SECONDS [TARGET...]      (all targets when none is named)
# Needs cargo-fuzz (`cargo install cargo-fuzz`); stable toolchain, no
# sanitizer (-s none). The corpus grows in fuzz/corpus/TARGET (not
# committed), starting from the checked-in seeds in fuzz/seeds/TARGET and,
# for the SOAP and discovery targets, tests/fixtures. A crash leaves its
# input in fuzz/artifacts/TARGET and fails the script.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:?seconds per target}"
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
# FUZZ_DEV=1: an unoptimised build (quicker to build, slower to run; the
# CI smoke run).
mode=()
[ -n "${FUZZ_DEV:-}" ] && mode=(--dev)
cargo fuzz build -s none "${mode[@]}"
status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  seeds=()
  [ -d "seeds/$t" ] && seeds+=("seeds/$t")
  case "$t" in soap_reader|probe_match|digest_challenge) seeds+=(../tests/fixtures) ;; esac
  log=$(mktemp)
  if cargo fuzz run -s none "${mode[@]}" "$t" "corpus/$t" "${seeds[@]}" -- \
      -max_total_time="$secs" -print_final_stats=1 -close_fd_mask=3 >"$log" 2>&1; then
    crashes=0
  else
    crashes=1
    status=1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
  echo "| \`$t\` | ${runs:-?} | ${cov:-?} | $secs s | $crashes |"
  [ "$crashes" = 0 ] || tail -30 "$log"
  rm -f "$log"
done
exit $status
