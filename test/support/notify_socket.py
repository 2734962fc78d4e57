#!/usr/bin/env python3
# A stand-in for systemd's notify socket ($NOTIFY_SOCKET), for tests: binds a unix datagram socket,
# prints every message it receives as one JSON line, and closes the file descriptors that come with
# BARRIER=1, which is how systemd acknowledges a barrier (systemd-notify waits for that).
import array
import json
import os
import socket
import sys

sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sys.argv[1])
print(json.dumps({"ready": True}), flush=True)
while True:
    data, ancillary, _flags, _addr = sock.recvmsg(65536, socket.CMSG_SPACE(16 * array.array("i").itemsize))
    fds = array.array("i")
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    for fd in fds:
        os.close(fd)
    print(json.dumps({"message": data.decode("utf-8", "replace"), "fds": len(fds)}), flush=True)
