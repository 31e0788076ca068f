"""The vb2po processes of the chaos run, supervised the way Kubernetes would: a process that is
killed (or exits on its own) is started again after a short delay, with the same settings and
the same stable identity (a consumer's `consumer.instance_id`).

Each process runs in its own session (a kill hits its whole process group) and dies with the
harness (`setpriv --pdeathsig KILL`), so an interrupted run leaves no vb2po process behind.
Only the thread that created a process may start it again: the death signal follows that thread.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

VB2PO = str(Path(sys.executable).parent / "vb2po")


@dataclass
class Member:
    name: str  # producer, consumer-1, consumer-2
    command: str  # producer | consumer
    settings_file: Path
    log_path: Path
    proc: subprocess.Popen | None = None
    restart_at: float | None = None  # monotonic time of the next start while down
    started_at: float = 0.0
    starts: int = 0
    kills: int = 0
    exits: list[int] = field(default_factory=list)  # exit codes of exits nobody asked for

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== chaos: start {self.starts + 1} of {self.name} at {time.strftime('%H:%M:%S')} ===\n".encode())
            log.flush()
            wrapper = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []
            self.proc = subprocess.Popen(
                [*wrapper, VB2PO, "--config", str(self.settings_file), self.command],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.starts += 1
        self.started_at = time.monotonic()
        self.restart_at = None

    def kill(self) -> bool:
        """SIGKILL the process group; True when a live process was hit."""
        if not self.alive():
            return False
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        self.proc.wait(30)
        self.kills += 1
        return True

    def signal(self, sig: int) -> None:
        if self.alive():
            assert self.proc is not None
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self, timeout: float = 15) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


class Fleet:
    """The processes, their kills and their restarts (call `tick` often, from one thread)."""

    def __init__(self, members: list[Member], restart_delay: tuple[float, float], rng, note) -> None:
        self.members = {m.name: m for m in members}
        self.restart_delay = restart_delay
        self.rng = rng
        self.note = note  # a callable that logs one line of the timeline
        self.restarting = True

    @property
    def kills(self) -> int:
        return sum(m.kills for m in self.members.values())

    def start_all(self) -> None:
        for member in self.members.values():
            member.start()

    def kill(self, name: str) -> bool:
        member = self.members[name]
        if not member.kill():
            return False
        member.restart_at = time.monotonic() + self.rng.uniform(*self.restart_delay)
        self.note(f"SIGKILL {name} (pid {member.proc.pid}, up {time.monotonic() - member.started_at:.1f} s)")
        return True

    def kill_random(self) -> str | None:
        candidates = [n for n, m in self.members.items() if m.alive()]
        if not candidates:
            return None
        name = self.rng.choice(candidates)
        return name if self.kill(name) else None

    def tick(self) -> None:
        now = time.monotonic()
        for member in self.members.values():
            if member.proc is not None and not member.alive() and member.restart_at is None:
                code = member.proc.returncode
                member.exits.append(code)
                member.restart_at = now + self.rng.uniform(*self.restart_delay)
                self.note(f"{member.name} exited on its own (code {code}); starting it again")
            if self.restarting and member.restart_at is not None and now >= member.restart_at:
                member.start()
                self.note(f"started {member.name} again (pid {member.proc.pid})")

    def signal_all(self, sig: int) -> None:
        for member in self.members.values():
            member.signal(sig)

    def stop(self) -> None:
        self.restarting = False
        for member in self.members.values():
            member.restart_at = None
            if member.alive() and member.proc is not None:
                member.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for member in self.members.values():
            if member.proc is not None and member.proc.poll() is None:
                try:
                    member.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    member.kill()
                    member.kills -= 1  # not a chaos kill
