#!/usr/bin/env python3
"""The comparison side of `camfleet bench adopt`: the same adopt calls made
with the Python onvif-zeep-async package, with the same concurrency, in one
asyncio process, against the same simulated fleet. Prints one JSON object.

  zeep_adopt.py --count 1000 --base-port 20000 --concurrency 64
"""
import argparse
import asyncio
import json
import resource
import time

T0 = time.perf_counter()

from onvif import ONVIFCamera  # noqa: E402  (import time counts as start-up)


async def adopt_one(port, user, password):
    cam = ONVIFCamera("127.0.0.1", port, user, password, adjust_time=True)
    try:
        await cam.update_xaddrs()  # GetSystemDateAndTime + GetServices
        dev = await cam.create_devicemgmt_service()
        await dev.GetDeviceInformation()
        await dev.GetScopes()
        await dev.GetHostname()
        await dev.GetNetworkInterfaces()
        await dev.GetNTP()
        await dev.GetDNS()
        await dev.GetUsers()
        media = await cam.create_media_service()
        profiles = await media.GetProfiles()
        for p in profiles:
            await media.GetStreamUri({"StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}, "ProfileToken": p.token})
            await media.GetSnapshotUri({"ProfileToken": p.token})
        await media.GetVideoEncoderConfigurations()
    finally:
        await cam.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--base-port", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--user", default="admin")
    ap.add_argument("--password", default="admin")
    a = ap.parse_args()
    sem = asyncio.Semaphore(a.concurrency)
    first = None
    ok = 0
    errors = {}
    ru0 = resource.getrusage(resource.RUSAGE_SELF)

    async def one(i):
        nonlocal first, ok
        async with sem:
            try:
                await adopt_one(a.base_port + i, a.user, a.password)
                ok += 1
                if first is None:
                    first = time.perf_counter() - T0
            except Exception as e:  # noqa: BLE001 - report every failure kind
                k = type(e).__name__
                errors[k] = errors.get(k, 0) + 1

    t = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(a.count)))
    wall = time.perf_counter() - t
    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru.ru_utime - ru0.ru_utime) + (ru.ru_stime - ru0.ru_stime)
    print(json.dumps({
        "bench": "adopt-zeep",
        "cameras": a.count,
        "concurrency": a.concurrency,
        "adopted": ok,
        "failures": errors,
        "wall_s": wall,
        "first_adopted_ms_after_start": None if first is None else first * 1000,
        "client_cpu_s_total": ru.ru_utime + ru.ru_stime,
        "client_cpu_ms_per_camera": cpu * 1000 / max(a.count, 1),
        "peak_rss_mib": ru.ru_maxrss / 1024,
    }, indent=2))


asyncio.run(main())
