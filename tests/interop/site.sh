#!/usr/bin/env bash
# camfleet on a real link, behind nginx (PEERS.md §10 and §11): two network
# namespaces joined by a veth pair with a test subnet that exists only
# inside them. The cameras' side runs 20 simulated cameras (WS-Discovery on
# its veth address, Hello at start); the server's side runs
# `camfleet serve --config FILE` with `[discovery] interfaces` set to its
# veth address, behind Debian's nginx twice (with and without
# `proxy_set_header Host $host`) and behind Caddy (packaging/Caddyfile).
# tests/site.rs then drives it through the proxies. Afterwards the CIDR-sweep benchmark of BENCHMARKS.md runs on the
# same link (a /20 holding the 20 cameras and no other host).
#
#   tests/interop/site.sh          (as root; builds nothing: run after `cargo build --tests`)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
BIN="${CARGO_TARGET_DIR:-$root/target}/debug/camfleet"
[ -x "$BIN" ] || cargo build --offline -q --bin camfleet

if ! command -v nginx >/dev/null || ! command -v caddy >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light caddy >/dev/null
fi
# The package may start its own service where systemd runs; ours is private.
systemctl stop caddy nginx 2>/dev/null || true

N=20
NET=10.231.77          # exists only inside the two namespaces below
CAM=$NET.2; SRV=$NET.1
A="cf-cams-$$"; B="cf-srv-$$"; VA="cfa$$"; VB="cfb$$"
W=$(mktemp -d /tmp/camfleet-site.XXXXXX)
cleanup() {
  set +e
  for f in "$W"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
  for _ in $(seq 50); do
    alive=0
    for f in "$W"/*.pid; do [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break; sleep 0.1
  done
  ip netns del "$A" 2>/dev/null; ip netns del "$B" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT

ip netns add "$A"; ip netns add "$B"
ip link add "$VA" type veth peer name "$VB"
ip link set "$VA" netns "$A"; ip link set "$VB" netns "$B"
ip -n "$A" addr add "$CAM/20" dev "$VA"; ip -n "$B" addr add "$SRV/20" dev "$VB"
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$A" link set "$VA" up; ip -n "$B" link set "$VB" up
ip -n "$A" route add 239.0.0.0/8 dev "$VA"; ip -n "$B" route add 239.0.0.0/8 dev "$VB"

echo "== camfleet serve --config in $B ($SRV), behind nginx"
cat > "$W/camfleet.toml" <<TOML
data_dir = "$W/data"
listen = "127.0.0.1:8080"
trusted_proxies = ["127.0.0.1"]
# The proxy that does not pass Host on is reached at this address.
public_url = "http://$SRV:18590"
poll_interval = 60
events = false
log_format = "json"

[discovery]
interfaces = ["$SRV"]
TOML
ip netns exec "$B" "$BIN" config check --config "$W/camfleet.toml" >"$W/check.out"
grep -q "interfaces = \[\"$SRV\"\]" "$W/check.out" || { cat "$W/check.out"; exit 1; }
head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$W/admin.pw"
"$BIN" user add --admin admin --password-file "$W/admin.pw" --config "$W/camfleet.toml" >/dev/null
ip netns exec "$B" "$BIN" serve --config "$W/camfleet.toml" >"$W/serve.out" 2>"$W/serve.log" &
echo $! > "$W/serve.pid"
for _ in $(seq 100); do ip netns exec "$B" "$BIN" health --url http://127.0.0.1:8080/healthz >/dev/null 2>&1 && break; sleep 0.1; done

# The shipped snippet's `location /` block, verbatim (it proxies to
# 127.0.0.1:8080, which is this namespace's own camfleet).
sed -n '/^    location \/ {/,/^    }/p' packaging/nginx-camfleet.conf > "$W/camfleet-location.conf"
grep -q proxy_pass "$W/camfleet-location.conf" || { echo "no location block in packaging/nginx-camfleet.conf"; exit 1; }
cat > "$W/nginx.conf" <<NGX
pid $W/nginx.pid; error_log $W/nginx.err; daemon off;
events {}
http { access_log off;
  client_body_temp_path $W/nginx-body; proxy_temp_path $W/nginx-proxy;
  fastcgi_temp_path $W/nginx-f; uwsgi_temp_path $W/nginx-u; scgi_temp_path $W/nginx-s;
  # packaging/nginx-camfleet.conf's location block (served without TLS here).
  server { listen $SRV:18589; client_max_body_size 512m;
    include $W/camfleet-location.conf; }
  # A stock minimal one: Host is not passed on.
  server { listen $SRV:18590;
    location / { proxy_pass http://127.0.0.1:8080;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_buffering off; } } }
NGX
ip netns exec "$B" nginx -c "$W/nginx.conf" -p "$W" &
for _ in $(seq 50); do [ -s "$W/nginx.pid" ] && break; sleep 0.1; done

# The shipped Caddyfile, served on plain HTTP at a test address (no ACME,
# no admin endpoint, state under $W).
{ printf '{\n\tadmin off\n\tauto_https off\n\tstorage file_system %s\n}\n' "$W/caddy"
  sed "s#^camfleet.example {#http://$SRV:18591 {#" packaging/Caddyfile; } > "$W/Caddyfile"
grep -q "http://$SRV:18591" "$W/Caddyfile" || { echo "no site block in packaging/Caddyfile"; exit 1; }
ip netns exec "$B" env HOME="$W" XDG_CONFIG_HOME="$W" XDG_DATA_HOME="$W" \
  caddy run --adapter caddyfile --config "$W/Caddyfile" >"$W/caddy.log" 2>&1 &
echo $! > "$W/caddy.pid"
for _ in $(seq 100); do ip netns exec "$B" "$BIN" health --url "http://$SRV:18591/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

echo "== $N simulated cameras in $A ($CAM), Hello at start"
ip netns exec "$A" "$BIN" simulate --count $N --base-port 21000 --bind "$CAM" --wsd-interface "$CAM" --hello \
  >"$W/sim.out" 2>"$W/sim.log" &
echo $! > "$W/sim.pid"
for _ in $(seq 100); do grep -q "camera" "$W/sim.out" 2>/dev/null && break; sleep 0.1; done

echo "== tests/site.rs through both proxies"
ip netns exec "$B" env CAMFLEET_SITE_PROXIES="http://$SRV:18589,http://$SRV:18590,http://$SRV:18591" \
  CAMFLEET_SITE_PASSWORD="$(cat "$W/admin.pw")" CAMFLEET_SITE_CAMERAS=$N \
  CAMFLEET_SITE_CIDR="$NET.0/24" CAMFLEET_SITE_IFACE="$SRV" CAMFLEET_SITE_CAMERA_HOST="$CAM" \
  cargo test --offline --test site -- --ignored || { echo "--- serve log"; tail -50 "$W/serve.log"; echo "--- nginx"; cat "$W/nginx.err"; echo "--- caddy"; tail -20 "$W/caddy.log"; exit 1; }
grep -q '"target":"camfleet::access"' "$W/serve.log" || { echo "no JSON access log lines"; tail "$W/serve.log"; exit 1; }

echo "== benchmark: CIDR sweep of $NET.0/20 (4094 hosts, $N cameras) over the veth link"
# Every camera must be found (the sweep waits for room in the kernel's ARP
# table rather than lose probes); the times are reported in BENCHMARKS.md,
# not asserted. First with the kernel's default table (gc_thresh3 1024),
# then as the operator's guide tunes a host that sweeps /20s.
ip netns exec "$B" "$BIN" bench sweep --cidr "$NET.0/20" --expect $N
OLD2=$(sysctl -n net.ipv4.neigh.default.gc_thresh2); OLD3=$(sysctl -n net.ipv4.neigh.default.gc_thresh3)
restore_neigh() { sysctl -qw net.ipv4.neigh.default.gc_thresh2="$OLD2" net.ipv4.neigh.default.gc_thresh3="$OLD3" || true; }
trap 'restore_neigh; cleanup' EXIT
sysctl -qw net.ipv4.neigh.default.gc_thresh2=8192 net.ipv4.neigh.default.gc_thresh3=16384 \
  || echo "cannot raise gc_thresh3 here: the runs below use the default table"
for i in 1 2 3; do
  sleep 4    # let the previous run's failed ARP entries age out
  ip netns exec "$B" "$BIN" bench sweep --cidr "$NET.0/20" --expect $N
done
restore_neigh
