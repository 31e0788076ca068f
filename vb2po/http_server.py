"""Serving an ASGI app from a background thread (the ops endpoints, the admin API, the sandbox)."""
from __future__ import annotations

import socket
import threading
import time

import uvicorn


class BackgroundServer:
    """uvicorn in a daemon thread on a socket bound up front (port 0: the OS picks one)."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, *, name: str = "http",
                 startup_timeout_s: float = 30, **uvicorn_options):
        self.app = app
        self.uvicorn_options = uvicorn_options
        self.host = host
        self.requested_port = port
        self.name = name
        self.startup_timeout_s = startup_timeout_s
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "BackgroundServer":
        # proto must say TCP: asyncio sets TCP_NODELAY on accepted sockets only then (else ~40 ms/answer)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.requested_port))
        self.port = sock.getsockname()[1]
        options = dict(log_level="warning", access_log=False, lifespan="off", loop="asyncio", http="h11",
                       timeout_graceful_shutdown=1)
        config = uvicorn.Config(self.app, **{**options, **self.uvicorn_options})
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name=f"{self.name}-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the {self.name} server thread died while starting")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the {self.name} server did not start within {self.startup_timeout_s}s")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout_s)
        if self._thread.is_alive():  # open keep-alive connections: stop waiting for them
            self._server.force_exit = True
            self._thread.join(timeout_s)
        self._server = self._thread = None

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
