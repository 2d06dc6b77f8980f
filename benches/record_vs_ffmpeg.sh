#!/usr/bin/env bash
# Recording CPU, like for like: `camfleet bench record` (one process, N
# streams) against one `ffmpeg -rtsp_transport tcp -c copy -f segment`
# process per camera (as Frigate records), both measured as whole
# processes (user + system CPU of everything they ran, from wait4), on the
# same simulated cameras (720p, 10 fps, 2.2 Mbit/s, one camera per stream,
# RTSP over TCP with Digest), for the same seconds, 10 s segments.
#
#   benches/record_vs_ffmpeg.sh [N...] [-- SECS RUNS]   default: 1 16 64 -- 20 3
#
# As root: runs itself in a loopback-only network namespace. Prints one
# line per run and a summary per N. camfleet's figure includes what ffmpeg
# does not do: a SHA-256 of every segment, fsync of each segment and its
# directory, and a SQLite ledger row; ffmpeg's includes its own process
# start-up, N times. Neither includes the simulator.
set -euo pipefail
cd "$(dirname "$0")/.."
NS_LIST=() SECS=20 RUNS=3
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  if [ "${args[$i]}" = "--" ]; then SECS=${args[$((i + 1))]:-20}; RUNS=${args[$((i + 2))]:-3}; break; fi
  NS_LIST+=("${args[$i]}")
done
[ ${#NS_LIST[@]} -gt 0 ] || NS_LIST=(1 16 64)
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/camfleet"
if [ -z "${REC_IN_NS:-}" ]; then
  [ -x "$BIN" ] || cargo build --release -q
  command -v ffmpeg >/dev/null || { apt-get update -qq && apt-get install -y -qq ffmpeg >/dev/null; }
  NS=camfleet-recbench-$$
  ip netns add "$NS"
  trap 'ip netns del "$NS" 2>/dev/null || true' EXIT
  ip netns exec "$NS" ip link set lo up
  REC_IN_NS=1 ip netns exec "$NS" "$0" "$@"
  exit $?
fi

D=$(mktemp -d /tmp/camfleet-recbench.XXXXXX)
cleanup() { [ -n "${sim:-}" ] && kill "$sim" 2>/dev/null; wait 2>/dev/null; rm -rf "$D"; }
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
# The camera clip: 1280x720, 10 fps, a keyframe a second, 2.2 Mbit/s.
ffmpeg -loglevel error -f lavfi -i testsrc2=size=1280x720:rate=10 -t 4 -pix_fmt yuv420p -c:v libx264 \
  -preset veryfast -g 10 -keyint_min 10 -sc_threshold 0 -bf 0 -b:v 2000k -maxrate 2000k -bufsize 2000k \
  -x264-params repeat-headers=1 -f h264 "$D/clip.h264"
max=0; for n in "${NS_LIST[@]}"; do [ "$n" -gt "$max" ] && max=$n; done
CAMFLEET_SIM_CLIP="$D/clip.h264" "$BIN" simulate --count "$max" --base-port 21000 --rtsp-port 18554 \
  --wsd-port 0 > "$D/sim.log" 2>&1 &
sim=$!
for _ in $(seq 100); do grep -q "simulated cameras" "$D/sim.log" && break; sleep 0.1; done

cpu() { awk '{printf "%.2f", $1 + $2}' "$1"; }
printf '%-8s %-4s %-12s %-12s %-7s\n' streams run camfleet_s ffmpeg_s ratio
for n in "${NS_LIST[@]}"; do
  for run in $(seq "$RUNS"); do
    /usr/bin/time -o "$D/cf.time" -f "%U %S" "$BIN" bench record \
      --url 'rtsp://127.0.0.1:18554/cam{i}/main' --user admin --password admin \
      --streams "$n" --secs "$SECS" --segment 10 > "$D/cf.log" 2>&1
    rm -rf "$D/ff" && mkdir -p "$D/ff"
    /usr/bin/time -o "$D/ff.time" -f "%U %S" bash -c '
      for i in $(seq 0 $(('"$n"' - 1))); do
        timeout -s INT '"$SECS"' ffmpeg -nostdin -loglevel error -rtsp_transport tcp \
          -i "rtsp://admin:admin@127.0.0.1:18554/cam$i/main" -c copy -f segment -segment_time 10 \
          -reset_timestamps 1 "'"$D"'/ff/cam$i-%03d.mp4" &
      done
      wait' || true
    c=$(cpu "$D/cf.time"); f=$(cpu "$D/ff.time")
    printf '%-8s %-4s %-12s %-12s %-7s\n' "$n" "$run" "$c" "$f" "$(awk -v c="$c" -v f="$f" 'BEGIN{printf "%.2f", c/f}')"
    echo "$n $c $f" >> "$D/all"
  done
done
echo
echo "summary (median of runs):"
for n in "${NS_LIST[@]}"; do
  awk -v n="$n" '$1 == n {print $2 / $3}' "$D/all" | sort -n | awk -v n="$n" '{a[NR]=$1} END {printf "  %s streams: median ratio %.2f (min %.2f, max %.2f)\n", n, a[int((NR+1)/2)], a[1], a[NR]}'
done
grep -E "frames|lost|segments" "$D/cf.log" | tail -3 || true
