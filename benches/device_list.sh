#!/usr/bin/env bash
# The device list under load, uncached: 10,000 devices, 64 concurrent
# clients (wrk), every request a different list page — filters, sorts,
# directions and deep pages reached by the keyset cursor — so the page
# cache never answers. Logs in through the login form like a browser.
#
#   benches/device_list.sh sqlite   [runs]     (release build first)
#   benches/device_list.sh postgres [runs]     (as root: a throwaway cluster)
#
# Prints one line per run: requests/s, p50, p99, and the count of URLs.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/camfleet"
KIND="${1:-sqlite}"
RUNS="${2:-3}"
PORT=18700
D=$(mktemp -d /tmp/camfleet-listbench.XXXXXX)
chmod 755 "$D"
cleanup() {
  [ -n "${srv:-}" ] && kill "$srv" 2>/dev/null && wait "$srv" 2>/dev/null || true
  if [ -n "${PGBIN:-}" ]; then su postgres -c "$PGBIN/pg_ctl -D $D/pg -m immediate -w stop" >/dev/null 2>&1 || true; fi
  rm -rf "$D"
}
trap cleanup EXIT
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

DBARGS=(--data-dir "$D/data")
if [ "$KIND" = postgres ]; then
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  chown postgres "$D"
  su postgres -c "$PGBIN/initdb -D $D/pg -A trust -U postgres --no-sync" >/dev/null
  su postgres -c "$PGBIN/pg_ctl -D $D/pg -l $D/pg.log -o '-c listen_addresses=127.0.0.1 -p 5434 -k $D' -w start" >/dev/null
  DBARGS+=(--database-url "postgres://postgres@127.0.0.1:5434/postgres")
fi

"$BIN" bench seed --devices 10000 "${DBARGS[@]}"
"$BIN" serve --no-poll --no-events "${DBARGS[@]}" --listen 127.0.0.1:$PORT > "$D/serve.log" 2>&1 &
srv=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.2; done

# Log in as a browser does: the form's token cookie, then the form.
csrf=$(curl -fsS -c "$D/jar" "http://127.0.0.1:$PORT/login" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -1)
curl -fsS -b "$D/jar" -c "$D/jar" -o /dev/null \
  --data-urlencode username=bench --data-urlencode password=bench-password \
  --data-urlencode "csrf=$csrf" --data-urlencode next=/ "http://127.0.0.1:$PORT/login"
session=$(awk '$6 == "camfleet_session" {print $7}' "$D/jar")
[ -n "$session" ] || { echo "login failed"; exit 1; }

# Every page of each list (walking the API's next cursors), as the page
# URLs a person clicking "Next" asks for.
python3 - "$PORT" "$session" > "$D/urls.txt" <<'PY'
import json, random, sys, urllib.parse, urllib.request
port, session = sys.argv[1], sys.argv[2]
lists = []
for sort in ["name", "model", "firmware", "status", "manufacturer"]:
    for desc in ["false", "true"]:
        lists.append({"sort": sort, "desc": desc})
for status in ["online", "offline", "degraded"]:
    lists.append({"status": status, "sort": "name", "desc": "false"})
for model in ["SV-2CD2143", "NC-P1455", "LX-200"]:
    lists.append({"model": model, "sort": "firmware", "desc": "true"})
urls = []
for q in lists:
    after, page = None, 1
    while True:
        p = dict(q, per_page="50", page=str(page))
        if after:
            p["after"] = after
        qs = urllib.parse.urlencode(p)
        urls.append("/devices?" + qs)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/devices?{qs}",
                                     headers={"Cookie": f"camfleet_session={session}"})
        body = json.load(urllib.request.urlopen(req))
        after = body.get("next")
        if not after:
            break
        page += 1
random.seed(13)
random.shuffle(urls)
print("\n".join(urls))
PY
n=$(wc -l < "$D/urls.txt")
cat > "$D/urls.lua" <<LUA
-- Each wrk thread starts at its own place in the list, so no two
-- threads ask for the same page at about the same time (the second
-- would be answered from the page cache).
local counter = 0
setup = function(thread)
  thread:set("first", counter)
  counter = counter + 1
end
local urls = {}
for line in io.lines("$D/urls.txt") do urls[#urls + 1] = line end
local i = nil
request = function()
  if i == nil then i = math.floor((first or 0) * #urls / 2) end
  i = i + 1
  return wrk.format("GET", urls[(i % #urls) + 1])
end
LUA
# Wait out the page cache's lifetime (10 s) after the walk above.
sleep 11
# CPU seconds (user+sys) used so far by the named processes.
cpu_of() {
  local t=0 pid
  for pid in $(pgrep -x "$1" || true); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}
# Busy CPU ticks of the whole machine (camfleet, the database, wrk, the
# kernel): processes that come and go (PostgreSQL's workers) count too.
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
hz=$(getconf CLK_TCK)
for r in $(seq 1 "$RUNS"); do
  c0=$(cpu_of camfleet); p0=$(busy)
  out=$(wrk -t2 -c64 -d10s --latency -s "$D/urls.lua" -H "Cookie: camfleet_session=$session" "http://127.0.0.1:$PORT")
  [ -n "${VERBOSE:-}" ] && echo "$out"
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  errs=$(echo "$out" | grep -E "Non-2xx|Socket errors" || true)
  c1=$(cpu_of camfleet); p1=$(busy)
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  cpu=$(awk -v c="$((c1 - c0))" -v p="$((p1 - p0))" -v hz="$hz" -v n="$reqs" \
    'BEGIN {printf "CPU per request: camfleet %.3f ms, whole machine %.3f ms", c / hz * 1000 / n, p / hz * 1000 / n}')
  echo "$KIND run $r: $rps req/s, p50 $p50, p99 $p99, $n distinct URLs; $cpu ${errs:+($errs)}"
  sleep 11
done
