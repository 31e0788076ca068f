"""A real `vb2po` process (consumer or producer) for the benchmark: started with a settings
file, its resident memory sampled with psutil, its Prometheus counters read from /metrics,
and stopped with SIGTERM (SIGKILL after a deadline) whatever happens."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import requests

VB2PO = str(Path(sys.executable).parent / "vb2po")
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfNa]+)$')


class Vb2poProcess:
    def __init__(self, settings_file: Path, command: str, log_file: Path, *, metrics_port: int | None = None,
                 args: tuple[str, ...] = (), sample_every_s: float = 0.05):
        self.command = command
        self.log_file = log_file
        self.metrics_port = metrics_port
        self._log = open(log_file, "a")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [VB2PO, "--config", str(settings_file), command, *args], stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.peak_rss = 0
        self.vm_hwm = 0  # the kernel's high-water mark, read just before the stop
        self._ps: psutil.Process | None = None
        self.rss_samples: list[tuple[float, int]] = []
        self._stop_sampling = threading.Event()
        self._sampler = threading.Thread(target=self._sample, args=(sample_every_s,), name=f"rss-{command}", daemon=True)
        self._sampler.start()
        self._session = requests.Session()

    # -- memory --------------------------------------------------------------------------
    def _sample(self, every_s: float) -> None:
        try:
            ps = psutil.Process(self.proc.pid)
            while not self._stop_sampling.is_set() and self.proc.poll() is None:
                rss = ps.memory_info().rss
                self.peak_rss = max(self.peak_rss, rss)
                self.rss_samples.append((time.monotonic() - self.started_at, rss))
                self._stop_sampling.wait(every_s)
        except psutil.Error:
            pass  # the process ended

    @property
    def peak_rss_mb(self) -> float:
        """The highest sampled RSS, or the kernel's VmHWM when that is higher (a spike between samples)."""
        return max(self.peak_rss, self.vm_hwm) / 1e6

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far (all threads)."""
        try:
            self._ps = self._ps or psutil.Process(self.proc.pid)
            times = self._ps.cpu_times()
            return times.user + times.system
        except psutil.Error:
            return float("nan")

    def _read_vm_hwm(self) -> None:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.vm_hwm = int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass

    # -- metrics -------------------------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        """Every sample of /metrics as {'name{labels}': value}; {} while the server is not up."""
        if self.metrics_port is None:
            return {}
        try:
            text = self._session.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        except requests.RequestException:
            return {}
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            m = _SAMPLE.match(line.strip())
            if m:
                out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
        return out

    # -- life ----------------------------------------------------------------------------
    def alive(self) -> bool:
        return self.proc.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(f"`vb2po {self.command}` exited with {self.proc.returncode}; "
                               f"last lines of {self.log_file}:\n{self.log_tail()}")

    def dump_stacks(self) -> None:
        """Every thread's stack into the process's log (`vb2po` registers faulthandler on SIGUSR1)."""
        if self.alive():
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(0.5)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM (a clean stop: in-flight records finish, offsets commit), SIGKILL at the deadline."""
        try:
            if self.proc.poll() is None:
                self._read_vm_hwm()
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(30)
            return self.proc.returncode
        finally:
            self._stop_sampling.set()
            self._sampler.join(5)
            self._session.close()
            self._log.close()


def counter(metrics: dict[str, float], name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for key, value in metrics.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total
