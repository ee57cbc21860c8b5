"""Put on PYTHONPATH of a child process: every attempt to open a network connection (anything but a Unix
socket) is written to $TESTIMONY_NETGUARD_LOG and refused, so a test can prove none was attempted (a
refused connection alone would look like an offline machine, which code may quietly tolerate)."""

import os
import socket
import traceback

_LOG = os.environ.get("TESTIMONY_NETGUARD_LOG", "")
_real_connect = socket.socket.connect


def _record(what: str, target: object) -> None:
    with open(_LOG or os.devnull, "a") as log:
        log.write(f"{what} {target!r}\n{''.join(traceback.format_stack(limit=12))}\n")


def _connect(self, address):
    if self.family == getattr(socket, "AF_UNIX", None):
        return _real_connect(self, address)
    _record("connect", address)
    raise OSError(f"netguard: network connection to {address!r} refused")


def _connect_ex(self, address):
    try:
        _connect(self, address)
    except OSError:
        return 111
    return 0


def _getaddrinfo(host, *args, **kwargs):
    _record("getaddrinfo", host)
    raise socket.gaierror(f"netguard: name lookup of {host!r} refused")


socket.socket.connect = _connect
socket.socket.connect_ex = _connect_ex
socket.getaddrinfo = _getaddrinfo
