"""Free loopback ports for locally started services (Kafka, the sandbox, ...)."""
from __future__ import annotations

import socket


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    The OS picks it (bind to port 0), so parallel test runs do not collide on a fixed
    port. There is a small race until the caller binds it; that is accepted for tests.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
