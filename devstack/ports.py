"""Free loopback ports for locally started services (Kafka, the sandbox, ...)."""
from __future__ import annotations

import socket
import threading

_handed_out: set[int] = set()
_lock = threading.Lock()


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports on 127.0.0.1 that were free a moment ago.

    The OS picks them (bind to port 0), so parallel runs do not collide on fixed ports. All are
    held open together while they are picked, and a port this process handed out before is never
    handed out again: right after a socket closes, the OS may offer its port to the next bind,
    and a broker whose two listeners got the same port refuses to start. A small race with other
    processes remains until the caller binds; that is accepted for tests and local stacks.
    """
    sockets: list[socket.socket] = []
    try:
        with _lock:
            ports: list[int] = []
            while len(ports) < count:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
                if port not in _handed_out:
                    _handed_out.add(port)
                    ports.append(port)
            return ports
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]
