#!/usr/bin/python3
# Test RTSP server (GStreamer's GstRtspServer): serves an H.264 MP4 in a loop on 127.0.0.1, over
# RTP/UDP and RTP-over-TCP (interleaved). Run by Debian's /usr/bin/python3 (python3-gi).
# Usage: rtsp_server.py VIDEO.mp4 PORT(0 = any free port) MOUNT
# Prints "READY <port>" on stdout when listening; exits when stdin closes (the parent died).
import sys
import gi
gi.require_version('Gst', '1.0')
gi.require_version('GstRtspServer', '1.0')
from gi.repository import GLib, Gst, GstRtspServer

video, port, mount = sys.argv[1], sys.argv[2], sys.argv[3]
Gst.init(None)
loop = GLib.MainLoop()


def on_media(_factory, media):
    # Loop the file without a gap: a segment seek at start, another at each SEGMENT_DONE (running
    # time, hence RTP timestamps, keep increasing). The media element is a bin in the media's pipeline.
    element = media.get_element()
    bus = (element.get_parent() or element).get_bus()
    bus.enable_sync_message_emission()

    def seek(flags):
        element.seek_simple(Gst.Format.TIME, flags | Gst.SeekFlags.SEGMENT, 0)
        return False

    def on_sync(_bus, msg):
        if msg.type == Gst.MessageType.SEGMENT_DONE:
            GLib.idle_add(seek, Gst.SeekFlags.NONE)

    bus.connect('sync-message', on_sync)
    media.connect('prepared', lambda _media: GLib.idle_add(seek, Gst.SeekFlags.FLUSH))


factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(f'( filesrc location="{video}" ! qtdemux ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 config-interval=-1 )')
# One media per client: a media that fails to prepare under load (503) fails that one connection,
# and the camera's retry gets a fresh one.
factory.set_shared(False)
factory.connect('media-configure', on_media)
server = GstRtspServer.RTSPServer()
server.set_address('127.0.0.1')
server.set_service(port)
server.get_mount_points().add_factory(mount, factory)
if server.attach(None) == 0:
    print(f'ERROR cannot listen on 127.0.0.1:{port}', flush=True)
    sys.exit(2)
GLib.io_add_watch(GLib.IOChannel.unix_new(0), GLib.PRIORITY_DEFAULT, GLib.IO_IN | GLib.IO_HUP | GLib.IO_ERR, lambda *_: loop.quit())
print(f'READY {server.get_bound_port()}', flush=True)
loop.run()
