#!/usr/bin/python3
"""A GStreamer RTSP server (gst-rtsp-server, Debian packages) for the
recorder's interop test: a test pattern as H.264 (x264) at /h264, H.264
with AAC audio (voaacenc) at /h264aac, H.265 (x265) at /h265 and H.264 with
B-frames at /h264b, optionally
behind Digest authentication.

usage: rtsp_server.py PORT [USER PASSWORD]
Written for camfleet; the pipeline is GStreamer's standard test source.
"""
import os
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

Gst.init(None)
port = sys.argv[1]
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
# CAMFLEET_RTSP_SIZE (e.g. 1280x720) and CAMFLEET_RTSP_KBPS for benchmarks.
size = os.environ.get("CAMFLEET_RTSP_SIZE", "320x240").split("x")
kbps = os.environ.get("CAMFLEET_RTSP_KBPS", "300")
video = f"videotestsrc is-live=true pattern=ball ! video/x-raw,width={size[0]},height={size[1]},framerate=25/1"
h264 = f"{video} ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate={kbps} ! rtph264pay name=pay0 pt=96 config-interval=1"
aac = ("audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=16000,channels=1 "
       "! voaacenc bitrate=32000 ! rtpmp4gpay name=pay1 pt=97")
h265 = f"{video} ! x265enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate={kbps} ! rtph265pay name=pay0 pt=96 config-interval=1"
# B-frames: two between references, in decode order on the wire (not
# zerolatency, which turns them off), Main profile.
h264b = (f"{video} ! x264enc speed-preset=veryfast key-int-max=25 bframes=2 b-adapt=false "
         f"bitrate={kbps} ! video/x-h264,profile=main ! rtph264pay name=pay0 pt=96 config-interval=1")
mounts = {"/h264": f"( {h264} )", "/h264aac": f"( {h264} {aac} )", "/h265": f"( {h265} )",
          "/h264b": f"( {h264b} )"}
for path, launch in mounts.items():
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    if len(sys.argv) >= 4:
        perms = GstRtspServer.RTSPPermissions()
        perms.add_permission_for_role("user", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
        perms.add_permission_for_role("user", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
        factory.set_permissions(perms)
    server.get_mount_points().add_factory(path, factory)
if len(sys.argv) >= 4:
    auth = GstRtspServer.RTSPAuth()
    auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
    auth.add_digest(sys.argv[2], sys.argv[3], token)
    server.set_auth(auth)
server.attach(None)
print(f"rtsp://127.0.0.1:{port}/h264 /h264aac /h265 /h264b", flush=True)
GLib.MainLoop().run()
