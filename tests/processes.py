"""Running `vb2po` commands as real processes (for crash tests), and stopping them."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

VB2PO = str(Path(sys.executable).parent / "vb2po")


def start_vb2po(settings_file: Path, command: str, log_file: Path) -> subprocess.Popen:
    log = open(log_file, "a")
    return subprocess.Popen([VB2PO, "--config", str(settings_file), command], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def sigkill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def terminate(proc: subprocess.Popen, timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            sigkill(proc)
    return proc.returncode
