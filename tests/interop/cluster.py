#!/usr/bin/env python3
"""Drives the three-node cluster test (tests/interop/cluster.sh).

Adopts the simulated cameras through the first node, turns recording on
for three of them, waits until every live node holds a share, then reads
the simulator's counters over a steady window: no camera may have been
polled more often than one poller allows, nor played to two recorders at
once. Then kills the node leading jobs with SIGKILL and measures how long
until the others hold every camera and lead. Prints the figures and writes
them to --out.

Standard library only; every address is loopback (the shell script runs
this inside its own network namespace).
"""
import argparse
import concurrent.futures
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request


def call(port, token, method, path, body=None, timeout=20):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def sim_stats(base_port, i):
    with urllib.request.urlopen(f"http://127.0.0.1:{base_port + i}/sim/stats", timeout=5) as r:
        return json.loads(r.read())


def rss_mib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def cpu_secs(pid):
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return None


def all_stats(base_port, n):
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        return list(ex.map(lambda i: sim_stats(base_port, i), range(n)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", required=True, help="file: name port pid per line")
    ap.add_argument("--token", required=True)
    ap.add_argument("--cameras", type=int, default=40)
    ap.add_argument("--base-port", type=int, default=19200)
    ap.add_argument("--interval", type=int, default=10)
    ap.add_argument("--windows", type=int, default=6, help="poll intervals per steady window")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    nodes = {}
    for line in open(a.nodes):
        name, port, pid = line.split()
        nodes[name] = (int(port), int(pid))
    first = min(nodes)
    out = []

    def say(msg):
        print(msg, flush=True)
        out.append(msg)

    def fail(msg):
        say("FAIL: " + msg)
        open(a.out, "w").write("\n".join(out) + "\n")
        sys.exit(1)

    def cluster(via):
        status, body = call(nodes[via][0], a.token, "GET", "/api/v1/cluster")
        if status != 200:
            fail(f"GET /api/v1/cluster on {via}: {status} {body}")
        return {n["name"]: n for n in body["nodes"]}

    def wait_recording(via, n, why):
        """Until the live nodes record `n` streams in all (60 s at most)."""
        t0 = time.monotonic()
        while sum(v["recording"] for v in cluster(via).values() if v["alive"]) < n:
            if time.monotonic() - t0 > 60:
                fail(f"{why} in 60 s: {cluster(via)}")
            time.sleep(1)

    # 1. Adopt every camera through the first node.
    t0 = time.monotonic()

    def adopt(i):
        url = f"http://127.0.0.1:{a.base_port + i}/onvif/device_service"
        return call(nodes[first][0], a.token, "POST", "/api/v1/adopt",
                    {"device_url": url, "username": "admin", "password": "admin"}, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(adopt, range(a.cameras)))
    bad = [(i, r) for i, r in enumerate(results) if r[0] != 200 or r[1].get("failed")]
    if bad:
        fail(f"adoption: {bad[:3]}")
    ids = [r[1]["device_id"] for r in results]
    say(f"adopted {a.cameras} cameras through {first} in {time.monotonic() - t0:.1f} s")

    # 2. Every live node takes a share; the shares add up to the fleet.
    t0 = time.monotonic()
    while True:
        c = cluster(first)
        alive = {n: v for n, v in c.items() if v["alive"]}
        shares = {n: v["devices"] for n, v in alive.items()}
        if len(alive) == len(nodes) and all(s > 0 for s in shares.values()) \
                and sum(shares.values()) == a.cameras:
            break
        if sum(shares.values()) > a.cameras:
            fail(f"more leases than cameras: {shares}")
        if time.monotonic() - t0 > 60:
            fail(f"shares not settled in 60 s: {shares}")
        time.sleep(0.5)
    say(f"shares after {time.monotonic() - t0:.1f} s: "
        + ", ".join(f"{n} {s}" for n, s in sorted(shares.items())))

    # 3. Record three cameras: the record leases are balanced on their
    # own (one each), following the poll leases where they can.
    leader = next((n for n, v in cluster(first).items() if "jobs" in v["leader"]), None)
    if leader is None:
        fail("no node leads jobs")

    def device(d, via=first):
        status, body = call(nodes[via][0], a.token, "GET", f"/api/v1/devices/{d}")
        if status != 200:
            fail(f"GET device {d}: {status} {body}")
        return body

    recorded = ids[:3]
    for d in recorded:
        status, body = call(nodes[first][0], a.token, "POST", f"/api/v1/devices/{d}/actions",
                            {"action": "recording", "profile": "Profile_1", "transport": "tcp"})
        if status != 200:
            fail(f"recording on device {d}: {status} {body}")
    t0 = time.monotonic()
    wait_recording(first, len(recorded), "recordings not started")
    # The record leases settle (balanced one a node) before they are read.
    while True:
        recorders = {d: device(d).get("recorded_by") for d in recorded}
        if None not in recorders.values() and len(set(recorders.values())) == min(3, len(nodes)):
            break
        if time.monotonic() - t0 > 60:
            fail(f"record leases not settled in 60 s: {recorders}")
        time.sleep(1)
    say(f"recording {len(recorded)} cameras after {time.monotonic() - t0:.1f} s: "
        + ", ".join(f"device {d} by {r}" for d, r in recorders.items()))
    moved = [d for d, r in recorders.items() if r == leader]
    if not moved:
        fail(f"{leader} records none of {recorders}")

    # 4. A steady window: at most one poller per camera.
    window = a.windows * a.interval
    before = all_stats(a.base_port, a.cameras)
    cpu0 = {n: cpu_secs(p) for n, (_, p) in nodes.items()}
    time.sleep(window)
    after = all_stats(a.base_port, a.cameras)
    cpu1 = {n: cpu_secs(p) for n, (_, p) in nodes.items()}
    c = cluster(first)
    say("per node over the window: " + "; ".join(
        f"{n}: {c[n]['devices']} cameras, RSS {rss_mib(p):.0f} MiB, CPU {cpu1[n] - cpu0[n]:.1f} s"
        for n, (_, p) in sorted(nodes.items())))
    polls = [x["time_requests"] - y["time_requests"] for x, y in zip(after, before)]
    limit = window // a.interval + 2
    say(f"steady {window} s: polls per camera min {min(polls)} max {max(polls)} (one poller: "
        f"about {window // a.interval}; two would be about {2 * window // a.interval}; limit {limit})")
    if max(polls) > limit:
        fail(f"a camera was polled {max(polls)} times in {window} s: polled by two nodes")
    if min(polls) < window // a.interval - 2:
        fail(f"a camera was polled only {min(polls)} times in {window} s")

    # 5. Kill the node leading jobs with SIGKILL.
    c = cluster(first)
    if "jobs" not in c[leader]["leader"]:
        fail(f"the leadership moved without a failure: {c}")
    survivor = next(n for n in nodes if n != leader)
    lost = c[leader]["devices"]
    os.kill(nodes[leader][1], signal.SIGKILL)
    killed = time.monotonic()
    say(f"killed {leader} (SIGKILL; it held {lost} cameras and led jobs)")
    relet = led = None
    during = all_stats(a.base_port, a.cameras)
    while relet is None or led is None:
        c = cluster(survivor)
        alive = {n: v for n, v in c.items() if v["alive"] and n != leader}
        held = sum(v["devices"] for v in alive.values())
        if relet is None and held == a.cameras and c[leader]["devices"] == 0:
            relet = time.monotonic() - killed
        if led is None and any("jobs" in v["leader"] for v in alive.values()) \
                and any("notify" in v["leader"] for v in alive.values()):
            led = time.monotonic() - killed
        if time.monotonic() - killed > 30:
            fail(f"after 30 s: re-leased {relet}, leadership {led}: {c}")
        time.sleep(0.25)
    say(f"re-leased all {a.cameras} cameras {relet:.1f} s after the kill; "
        f"jobs and notifier led by a survivor after {led:.1f} s")
    c = cluster(survivor)
    say("shares after the kill: " + ", ".join(
        f"{n} {v['devices']}{'' if v['alive'] else ' (dead)'}" for n, v in sorted(c.items())))
    say("RSS after the kill: " + ", ".join(
        f"{n} {rss_mib(p):.0f} MiB" for n, (_, p) in sorted(nodes.items()) if n != leader))
    # The failover window: still one poller per camera; recordings moved.
    time.sleep(window)
    end = all_stats(a.base_port, a.cameras)
    span = time.monotonic() - killed
    polls = [x["time_requests"] - y["time_requests"] for x, y in zip(end, during)]
    limit = int(span) // a.interval + 2
    say(f"{span:.0f} s across the failover: polls per camera min {min(polls)} max {max(polls)} "
        f"(limit {limit})")
    if max(polls) > limit:
        fail(f"a camera was polled {max(polls)} times in {span:.0f} s: polled by two nodes")
    wait_recording(survivor, len(recorded), "recordings not resumed")
    end = all_stats(a.base_port, a.cameras)
    peak = max(s["max_live_streams"] for s in end)
    plays = {d: end[ids.index(d)]["live_plays"] for d in recorded}
    say(f"recorded cameras: RTSP plays {plays} ({moved} moved from {leader}); "
        f"most streams one camera ever played at once: {peak}")
    if peak > 1:
        fail("a camera was recorded by two nodes at once")
    for d in moved:
        by = device(d, survivor).get("recorded_by")
        say(f"device {d}: now recorded by {by}")
        if plays[d] < 2 or by in (None, leader):
            fail(f"the recording of device {d} did not move from {leader}: plays {plays[d]}, by {by}")
    open(a.out, "w").write("\n".join(out) + "\n")
    say("cluster test passed")


if __name__ == "__main__":
    main()
