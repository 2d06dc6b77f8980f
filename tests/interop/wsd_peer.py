#!/usr/bin/env python3
"""Drive the third-party `wsdiscovery` package (PyPI, 2.1.2) as a peer for
camfleet's interop tests, pinned to 127.0.0.1.

Run only inside a loopback-only network namespace (see run.sh): the package
picks its interfaces itself and would otherwise multicast on the real NIC.

  wsd_peer.py publish NAME XADDR     one device until SIGTERM, then Bye
  wsd_peer.py probe SECONDS          wsdiscovery's own client; prints EPR XAddrs scopes
"""
import ipaddress
import signal
import socket
import sys
import time
import uuid

import wsdiscovery.threaded as threaded

# Never let the package choose interfaces: loopback IPv4 only.
threaded._getNetworkAddrs = lambda ver: [ipaddress.ip_address("127.0.0.1")] if ver == socket.AF_INET else []

from wsdiscovery import QName, Scope  # noqa: E402
from wsdiscovery.discovery import ThreadedWSDiscovery  # noqa: E402
from wsdiscovery.publishing import ThreadedWSPublishing  # noqa: E402

NVT = QName("http://www.onvif.org/ver10/network/wsdl", "NetworkVideoTransmitter", "dn")


def publish(name, xaddr):
    wsp = ThreadedWSPublishing(uuid_=f"urn:uuid:{uuid.uuid4()}")
    wsp.start()
    wsp.publishService(
        types=[NVT],
        xAddrs=[xaddr],
        scopes=[
            Scope("onvif://www.onvif.org/type/video_encoder"),
            Scope("onvif://www.onvif.org/Profile/Streaming"),
            Scope(f"onvif://www.onvif.org/name/{name}"),
            Scope("onvif://www.onvif.org/hardware/PY-WSD"),
        ],
    )
    print("published", name, xaddr, flush=True)

    def stop(*_):
        # ThreadedWSPublishing.stop() resolves to the networking class's stop,
        # which sends nothing; the Bye is queued by clearLocalServices() and
        # goes out (with its UDP repeats) on the networking thread.
        wsp.clearLocalServices()
        time.sleep(1.5)
        wsp.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    while True:
        time.sleep(0.5)


def probe(seconds):
    wsd = ThreadedWSDiscovery()
    wsd.start()
    found = wsd.searchServices(types=[NVT], timeout=seconds)
    for s in found:
        print(s.getEPR(), " ".join(s.getXAddrs()), " ".join(str(x) for x in s.getScopes()), flush=True)
    print(len(found), "found", flush=True)
    wsd.stop()


if __name__ == "__main__":
    if sys.argv[1] == "publish":
        publish(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "probe":
        probe(int(sys.argv[2]))
    else:
        sys.exit(__doc__)
