"""GStreamer's RTSP server (a third-party implementation) for the RTSP pull tests.

Run with Debian's Python (``/usr/bin/python3``, which has the ``gi`` bindings):
``gst_rtsp_server.py h264|h265 [aac|alaw]`` serves ``rtsp://127.0.0.1:<port>/cam`` — a live
320×240 25 fps test picture, GOP 1 s, optionally with a test tone — over UDP and TCP, and
prints the port on stdout.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

ENCODERS = {
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 ! video/x-h264,profile=main"
            " ! rtph264pay name=pay0 pt=96 config-interval=-1",
    "h265": "x265enc tune=zerolatency speed-preset=ultrafast key-int-max=25 ! rtph265pay name=pay0 pt=96"
            " config-interval=-1",
}
AUDIO = {
    "": "",
    "aac": " audiotestsrc is-live=true ! audio/x-raw,rate=16000,channels=1 ! voaacenc"
           " ! rtpmp4gpay name=pay1 pt=97",
    "alaw": " audiotestsrc is-live=true ! audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay1",
}


def main() -> None:
    codec = sys.argv[1] if len(sys.argv) > 1 else "h264"
    audio = AUDIO[sys.argv[2] if len(sys.argv) > 2 else ""]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service("0")
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,"
                       f"framerate=25/1 ! {ENCODERS[codec]}{audio} )")
    factory.set_shared(True)
    server.get_mount_points().add_factory("/cam", factory)
    server.attach(None)
    print(server.get_bound_port(), flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
