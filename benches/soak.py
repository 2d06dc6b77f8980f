#!/usr/bin/env python3
"""The soak's driver (benches/soak.sh starts the processes and calls this).

Adopts every simulated camera through the API while they all behave, sets
up a webhook channel and two recorded cameras, then has the simulator
restarted with a share misbehaving (the cameras went bad after adoption, as
they do on a site) and samples the serving process every 30 s: resident
memory, open file descriptors, polls done, alerts delivered, segments
recorded. At the end it checks each camera's state against what the
simulator was told, and prints the verdict lines BENCHMARKS.md records.

Standard library only. Every address is loopback (soak.sh runs it inside
its own network namespace).
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

MISBEHAVIOURS = ["hang", "garbage", "refuse", "huge", "endless", "skew=3600"]


def misbehaviour(index, percent):
    """The same rule as `camfleet simulate --misbehave` (src/cli/simulate.rs)."""
    if (index * 7919) % 100 < min(percent, 100):
        return MISBEHAVIOURS[index % len(MISBEHAVIOURS)]
    return None


def expected_state(index, percent):
    kind = misbehaviour(index, percent)
    if kind is None:
        return "online"
    if kind.startswith("skew"):
        return "degraded"
    if kind == "refuse":
        return "unauthorized"
    return "offline"


class Api:
    def __init__(self, port, token):
        self.base = f"http://127.0.0.1:{port}"
        self.token = token

    def call(self, method, path, body=None, timeout=60):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                ctype = r.headers.get("Content-Type", "")
                return r.status, (json.loads(raw) if "json" in ctype and raw else raw)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def devices(self):
        out, after = [], None
        while True:
            q = "/api/v1/devices?per_page=500" + (f"&after={after}" if after else "")
            status, body = self.call("GET", q)
            if status != 200:
                raise SystemExit(f"device list: {status} {body}")
            out += body["devices"]
            after = body.get("next")
            if not after:
                return out


def proc_sample(pid):
    status = open(f"/proc/{pid}/status").read()
    kib = {l.split(":")[0]: int(l.split()[1]) for l in status.splitlines()
           if l.startswith(("VmRSS", "RssAnon", "RssFile"))}
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return kib["VmRSS"] / 1024, kib["RssAnon"] / 1024, fds


def metric_sum(text, name):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (name.endswith("}") or line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def rss_growth(tail):
    """Growth of resident memory over the window: the mean of its last five
    minutes against the mean of its first five (single samples swing by
    10-15 MiB with the poll batches in flight)."""
    t0, t1 = tail[0][0], tail[-1][0]
    head = [s[1] for s in tail if s[0] < t0 + 5] or [tail[0][1]]
    end = [s[1] for s in tail if s[0] > t1 - 5] or [tail[-1][1]]
    a, b = sum(head) / len(head), sum(end) / len(end)
    return (b - a) / a * 100, a, b


def rss_trend(tail):
    """Growth of resident memory as its least-squares line over the whole
    window says it: from the line's value at the window's start to its
    value at the end, in percent. Every 30 s sample counts, so the swing of
    single samples (the poll batches in flight, the write-ahead log's
    cycle) weighs less than in two 5-minute means."""
    n = len(tail)
    xs, ys = [s[0] for s in tail], [s[1] for s in tail]
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0
    start = my + slope * (xs[0] - mx)
    end = my + slope * (xs[-1] - mx)
    return (end - start) / start * 100, start, end


def fd_trend(tail):
    """Open descriptors' trend over the window: the mean of its last ten
    minutes against the mean of its first ten. A leak is a trend; a single
    sample counts the connections in flight at that instant, which moves
    by a few dozen since event watches close their connection between
    pulls (session 10)."""
    t0, t1 = tail[0][0], tail[-1][0]
    head = [s[3] for s in tail if s[0] < t0 + 10] or [tail[0][3]]
    end = [s[3] for s in tail if s[0] > t1 - 10] or [tail[-1][3]]
    return sum(end) / len(end) - sum(head) / len(head)


def report(csv_path):
    """The memory and descriptor verdict again, from a run's samples.csv."""
    rows = [list(map(float, l.split(","))) for l in open(csv_path).read().splitlines()[1:] if l]
    tail = [r for r in rows if r[0] >= 10]
    growth, a, b = rss_growth(tail)
    fds = [r[3] for r in tail]
    fit, f0, f1 = rss_trend(tail)
    print(f"RSS fitted line minute {tail[0][0]:.1f}-{tail[-1][0]:.1f}: {f0:.1f} -> {f1:.1f} MiB, "
          f"growth {fit:+.1f} %")
    print(f"RSS minute {tail[0][0]:.1f}-{tail[-1][0]:.1f}: first 5 min mean {a:.1f} MiB, last 5 min mean "
          f"{b:.1f} MiB, growth {growth:+.1f} %, peak {max(r[1] for r in tail):.1f}; "
          f"anon {tail[0][2]:.1f} -> {tail[-1][2]:.1f}; fds {min(fds):.0f}..{max(fds):.0f}, "
          f"trend {fd_trend(tail):+.1f}")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--report":
        report(sys.argv[2])
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--pid", type=int, required=True, help="the serve process")
    ap.add_argument("--cameras", type=int, required=True)
    ap.add_argument("--base-port", type=int, required=True)
    ap.add_argument("--misbehave", type=int, default=20)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--interval", type=int, default=10, help="poll interval, s")
    ap.add_argument("--hook-port", type=int, required=True)
    ap.add_argument("--hook-count", required=True, help="file the webhook counts into")
    ap.add_argument("--restart-sim", required=True,
                    help="command that restarts the simulator misbehaving")
    ap.add_argument("--samples", required=True, help="CSV of the samples")
    ap.add_argument("--data-dir", required=True, help="serve's data directory (database size)")
    a = ap.parse_args()
    api = Api(a.port, a.token)

    # 1. Adopt every camera while all behave.
    t0 = time.monotonic()

    def adopt(i):
        url = f"http://127.0.0.1:{a.base_port + i}/onvif/device_service"
        return api.call("POST", "/api/v1/adopt",
                        {"device_url": url, "username": "admin", "password": "admin"})

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        results = list(ex.map(adopt, range(a.cameras)))
    bad = [(i, r) for i, r in enumerate(results)
           if r[0] != 200 or not isinstance(r[1], dict) or r[1].get("failed")]
    print(f"adopted {a.cameras - len(bad)} of {a.cameras} in {time.monotonic() - t0:.0f} s",
          flush=True)
    if bad:
        raise SystemExit(f"adoption failed: {bad[:3]}")

    # 2. A webhook channel; every rule sends to it.
    status, ch = api.call("POST", "/api/v1/alert-channels", {
        "name": "soak webhook", "kind": "webhook",
        "url": f"http://127.0.0.1:{a.hook_port}/hook", "secret": "soak-webhook-secret-0123"})
    if status != 201:
        raise SystemExit(f"webhook channel: {status} {ch}")
    status, rules = api.call("GET", "/api/v1/alert-rules")
    for r in rules:
        api.call("PUT", f"/api/v1/alert-rules/{r['id']}", {"channel": [ch["id"]], "enabled": True})
    print(f"webhook channel {ch['id']}; {len(rules)} rules send to it", flush=True)

    # 3. Two well-behaved cameras recorded.
    by_port = {}
    for d in api.devices():
        by_port[int(d["device_url"].split(":")[2].split("/")[0])] = d
    recorded = [i for i in range(a.cameras) if misbehaviour(i, a.misbehave) is None][:2]
    for i in recorded:
        d = by_port[a.base_port + i]
        status, full = api.call("GET", f"/api/v1/devices/{d['id']}")
        profile = full["profiles"][0]["token"]
        status, body = api.call("POST", f"/api/v1/devices/{d['id']}/actions",
                                {"action": "recording", "profile": profile, "transport": "tcp"})
        if status != 200:
            raise SystemExit(f"recording on camera {i}: {status} {body}")
    print(f"recording cameras {recorded}", flush=True)

    # 4. The cameras go bad.
    subprocess.run(a.restart_sim, shell=True, check=True)
    print(f"simulator restarted: {a.misbehave}% misbehave", flush=True)

    # 5. Sample every 30 s.
    start = time.monotonic()
    samples = []
    with open(a.samples, "w") as out:
        out.write("minute,rss_mib,anon_mib,fds,polls,poll_errors,deliveries,hook_posts,segments,db_mib\n")
        while True:
            elapsed = time.monotonic() - start
            rss, anon, fds = proc_sample(a.pid)
            db_mib = sum(os.path.getsize(os.path.join(a.data_dir, f)) for f in os.listdir(a.data_dir)
                         if f.startswith("camfleet.db")) / 2**20
            status, text = api.call("GET", "/metrics")
            text = text.decode() if isinstance(text, bytes) else str(text)
            polls = metric_sum(text, "camfleet_polls_total")
            errors = metric_sum(text, "camfleet_poll_errors_total")
            deliveries = metric_sum(text, 'camfleet_deliveries{status="sent"}')
            segments = metric_sum(text, "camfleet_recorded_segments_total")
            try:
                hooks = int(open(a.hook_count).read() or 0)
            except (OSError, ValueError):
                hooks = 0
            row = (elapsed / 60, rss, anon, fds, polls, errors, deliveries, hooks, segments, db_mib)
            samples.append(row)
            out.write(",".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row) + "\n")
            out.flush()
            print("t=%5.1f min  RSS %6.1f MiB (anon %6.1f)  fds %4d  polls %8.0f  errors %7.0f  "
                  "sent %5.0f  webhook %5d  segments %4.0f  db %5.1f MiB" % row, flush=True)
            if elapsed >= a.minutes * 60:
                break
            time.sleep(max(0.0, 30 - (time.monotonic() - start - elapsed)))

    # 6. Verdict.
    devices = api.devices()
    wrong = []
    states = {}
    for d in devices:
        i = int(d["device_url"].split(":")[2].split("/")[0]) - a.base_port
        states[d["status"]] = states.get(d["status"], 0) + 1
        want = expected_state(i, a.misbehave)
        if d["status"] != want:
            wrong.append((i, misbehaviour(i, a.misbehave), d["status"], want))
    first = next((s for s in samples if s[0] >= 10), samples[0])
    last = samples[-1]
    tail = [s for s in samples if s[0] >= first[0]]
    growth, start_mib, end_mib = rss_growth(tail)
    fds = [s[3] for s in tail]
    # Cadence from the samples the poller stored: for each camera, the gaps
    # between consecutive polls after minute 10 (read-only, beside serve).
    import sqlite3
    since_ms = int((time.time() - (last[0] - first[0]) * 60) * 1000)
    con = sqlite3.connect(f"file:{os.path.join(a.data_dir, 'camfleet.db')}?mode=ro", uri=True)
    rows = con.execute("SELECT device_id, at_ms FROM health_samples WHERE at_ms >= ? "
                       "ORDER BY device_id, at_ms", (since_ms,)).fetchall()
    con.close()
    gaps, prev = [], {}
    for dev, at in rows:
        if dev in prev:
            gaps.append((at - prev[dev]) / 1000)
        prev[dev] = at
    gaps.sort()
    late = sum(1 for g in gaps if g > a.interval + 2)
    p99 = gaps[int(len(gaps) * 0.99)] if gaps else 0
    mean_gap = sum(gaps) / len(gaps) if gaps else 0
    print()
    print(f"states: {dict(sorted(states.items()))}; misclassified: {len(wrong)}")
    for w in wrong[:10]:
        print(f"  camera {w[0]} ({w[1]}): {w[2]}, expected {w[3]}")
    print(f"RSS from minute {first[0]:.1f} to {last[0]:.1f}: {first[1]:.1f} -> {last[1]:.1f} MiB, "
          f"peak {max(s[1] for s in tail):.1f}; mean of its first 5 minutes {start_mib:.1f}, "
          f"of its last 5 {end_mib:.1f}: growth {growth:+.1f} %")
    fit, f0, f1 = rss_trend(tail)
    print(f"RSS by its least-squares line over the same span: {f0:.1f} -> {f1:.1f} MiB, "
          f"growth {fit:+.1f} % (the verdict's figure)")
    trend = fd_trend(tail)
    print(f"open file descriptors over the same span: {min(fds)}..{max(fds)}; "
          f"mean of the last 10 minutes against the first 10: {trend:+.1f}")
    print(f"cadence after minute 10: {len(gaps)} intervals between polls, mean {mean_gap:.2f} s, "
          f"p99 {p99:.2f} s, max {gaps[-1] if gaps else 0:.2f} s; "
          f"{late} later than {a.interval} s + 2 s")
    print(f"alerts delivered to the webhook: {last[7]}; segments recorded: {last[8]:.0f}")
    ok = not wrong and fit <= 5 and abs(trend) <= 8 \
        and gaps and late == 0 and last[7] > 0 and last[8] > 0
    print("SOAK PASSED" if ok else "SOAK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
