"""The image's smoke test (part of `make check-deploy`, so of `make test`): vb2po run from inside
the image's own root filesystem, the way a container runtime with the chart's security context
would run it.

The image (built, or reused when nothing changed) is unpacked with `umoci unpack`; every
command then runs in a mount namespace of its own (`unshare --mount`) where the root filesystem
is a read-only bind mount of the unpacked one, with /proc and a writable /tmp (a host folder,
so what the process wrote there can be looked at afterwards), chrooted and as the image's user
(10001, never root), with exactly the image's environment. Network: the host's loopback, where
the local stack listens.

Checked: the image's user, entry point and environment; `vb2po --version`; the ODBC drivers
registered in the image (FreeTDS loads); `vb2po config check` against the stack; a short sync:
`vb2po producer` and `vb2po consumer` apply every payment of a small Visma company (SQLite over
the image's SQLite3 ODBC driver, the file in /tmp) to the PowerOffice sandbox and mark it;
both stop cleanly on SIGTERM with no traceback; nothing but the test data was written to /tmp.

Kafka: the broker at $VB2PO_SMOKE_KAFKA (the test session's), else a one-node broker of its own.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import date
from pathlib import Path

from devstack.dataset import DatasetSpec, payment_rows
from devstack.image import ENTRYPOINT, UID, Image, build, project_version
from devstack.ports import free_port
from devstack.stack import LocalClient, settings_dict, write_settings
from devstack.visma_seed import seed_company, sqlite_connection_string
from vb2po.visma.db import VismaDatabase

CLIENT_KEY = "smoke-client"
LOOKBACK = date(2026, 1, 1)
SPEC = DatasetSpec(size=120, seed=11)
DATA = "/tmp/smoke"  # inside the image: the test data, in the writable /tmp
SYNC_TIMEOUT_S = 120

# Mount the unpacked root read-only at $3, /proc, and the host folder $2 as /tmp; then run "$@".
_NAMESPACE_SCRIPT = """
set -e
root=$1 tmp=$2 mnt=$3; shift 3
mount --bind "$root" "$mnt"
mount -o remount,bind,ro "$mnt"
mount -t proc proc "$mnt/proc"
mount --bind "$tmp" "$mnt/tmp"
exec "$@"
"""


def say(message: str) -> None:
    print(f"smoke: {message}", flush=True)


class Failed(Exception):
    pass


class Rootfs:
    """The unpacked image and a way to run its programs as a container runtime would."""

    def __init__(self, image: Image, work: Path):
        self.work = work
        bundle = work / "bundle"
        subprocess.run(["umoci", "unpack", "--image", image.ref, str(bundle)], check=True, capture_output=True)
        self.root = bundle / "rootfs"
        self.runtime = json.loads((bundle / "config.json").read_text())  # the OCI runtime config umoci derived
        self.tmp = work / "tmp"
        self.tmp.mkdir(mode=0o1777)
        self.tmp.chmod(0o1777)
        self.mnt = work / "mnt"
        self.mnt.mkdir()

    @property
    def user(self) -> tuple[int, int]:
        user = self.runtime["process"]["user"]
        return user["uid"], user["gid"]

    @property
    def env(self) -> list[str]:
        return list(self.runtime["process"]["env"])

    def command(self, argv: list[str]) -> list[str]:
        uid, gid = self.user
        cwd = self.runtime["process"].get("cwd", "/")
        return ["unshare", "--mount", "--propagation", "private", "bash", "-c", _NAMESPACE_SCRIPT, "vb2po-smoke",
                str(self.root), str(self.tmp), str(self.mnt),
                "env", "-i", *self.env, "chroot", f"--userspec={uid}:{gid}", str(self.mnt),
                "/bin/sh", "-c", 'cd "$0" && exec "$@"', cwd, *argv]

    def run(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(argv), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def start(self, argv: list[str], log: Path) -> subprocess.Popen:
        with open(log, "w") as out:
            return subprocess.Popen(self.command(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def expect(result: subprocess.CompletedProcess, what: str, needle: str | None = None) -> str:
    output = result.stdout + result.stderr
    if result.returncode != 0 or (needle is not None and needle not in output):
        raise Failed(f"{what}: exit code {result.returncode}, expected {needle!r} in the output:\n{output[-4000:]}")
    return output


def check_image_config(image: Image, rootfs: Rootfs) -> None:
    config = image.config()["config"]
    uid, gid = rootfs.user
    if uid == 0 or config.get("User") != f"{UID}:{UID}":
        raise Failed(f"the image runs as {config.get('User')!r} (uid {uid}), expected {UID}:{UID}, not root")
    env = dict(e.split("=", 1) for e in rootfs.env)
    for key, value in {"PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp"}.items():
        if env.get(key) != value:
            raise Failed(f"the image's environment has {key}={env.get(key)!r}, expected {value!r}")
    if config.get("Entrypoint") != [ENTRYPOINT]:
        raise Failed(f"entry point {config.get('Entrypoint')}, expected [{ENTRYPOINT!r}]")
    say(f"image config: user {config['User']}, entry point {ENTRYPOINT}, HOME=/tmp, no bytecode writes")


def check_drivers(rootfs: Rootfs) -> None:
    drivers = expect(rootfs.run(["odbcinst", "-q", "-d"]), "odbcinst -q -d")
    for name in ("[FreeTDS]", "[SQLite3]"):
        if name not in drivers:
            raise Failed(f"ODBC driver {name} is not registered in the image: {drivers}")
    # FreeTDS loads and tries to connect (to a closed port): any error but "driver not found" (IM002)
    probe = ("import pyodbc\n"
             f"try:\n    pyodbc.connect('Driver=FreeTDS;Server=127.0.0.1;Port={free_port()};TDS_Version=7.4;"
             "UID=x;PWD=x', timeout=3)\nexcept pyodbc.Error as exc:\n    print(exc.args[0], exc.args[-1])\n")
    answer = expect(rootfs.run(["python3", "-c", probe]), "connecting through FreeTDS")
    if "IM002" in answer or "file not found" in answer.lower():
        raise Failed(f"the FreeTDS ODBC driver does not load in the image: {answer}")
    say(f"ODBC drivers registered: FreeTDS (loads: {answer.strip()[:60]}...), SQLite3")


def check_bytecode(rootfs: Rootfs) -> None:
    """The .pyc files made at build time are the image's Python's own (else it would compile at start)."""
    magic = expect(rootfs.run(["python3", "-c", "import importlib.util; print(importlib.util.MAGIC_NUMBER.hex())"]),
                   "python3 in the image").strip()
    pyc = next((rootfs.root / "usr/local/lib/python3.11/dist-packages/vb2po/__pycache__").glob("cli.*.pyc"))
    if pyc.read_bytes()[:4].hex() != magic:
        raise Failed(f"{pyc.name} was compiled for another Python (magic {pyc.read_bytes()[:4].hex()}, image {magic})")


def smoke() -> int:
    began = time.monotonic()
    image = build()
    version = project_version()
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="vb2po-smoke-"))
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        rootfs = Rootfs(image, work)
        say(f"unpacked oci:{image.ref} ({_size(rootfs.root) / 1e6:.0f} MB on disk, "
            f"{image.compressed_size() / 1e6:.0f} MB compressed); root read-only, /tmp writable")
        try:
            check_image_config(image, rootfs)
            expect(rootfs.run(["vb2po", "--version"]), "vb2po --version", f"vb2po {version}")
            say(f"vb2po --version: vb2po {version}")
            check_bytecode(rootfs)
            check_drivers(rootfs)
            _sync(stack, rootfs, work)
        except Failed as exc:
            print(f"smoke: FAILED: {exc}", file=sys.stderr, flush=True)
            return 1
    say(f"the image passed in {time.monotonic() - began:.0f}s")
    return 0


def _sync(stack: ExitStack, rootfs: Rootfs, work: Path) -> None:
    from sandbox.server import SandboxServer
    from sandbox.state import ClientSeed, SandboxConfig

    bootstrap = os.environ.get("VB2PO_SMOKE_KAFKA")
    if not bootstrap:
        from devstack.kafka import KafkaCluster

        say("starting a one-node Kafka broker ...")
        bootstrap = stack.enter_context(KafkaCluster(nodes=1, workdir=work / "kafka")).bootstrap_servers
    sandbox = stack.enter_context(SandboxServer([ClientSeed(CLIENT_KEY, SPEC)], SandboxConfig()))
    data = rootfs.tmp / DATA.removeprefix("/tmp/")
    data.mkdir()
    with VismaDatabase(sqlite_connection_string(data / "F0001.db")) as db:
        rows = seed_company(db, SPEC)
    for path in [data, *data.iterdir()]:
        os.chown(path, UID, UID)
    expected = sum(1 for _ in payment_rows(SPEC, on_or_after=LOOKBACK))
    settings = settings_dict(
        bootstrap_servers=bootstrap, api_url=sandbox.api_url, token_url=sandbox.token_url,
        application_key=sandbox.application_key, subscription_key=sandbox.subscription_key,
        clients=[LocalClient("smoke", CLIENT_KEY, 1, sqlite_connection_string(Path(DATA) / "F0001.db"))],
        lookback=LOOKBACK, namespace=f"smoke-{uuid.uuid4().hex[:8]}", partitions=3, poll_interval_s=0.2, idle_poll_interval_s=0.2)
    write_settings(data / "settings.yaml", settings).chmod(0o644)
    config = ["vb2po", "--config", f"{DATA}/settings.yaml"]
    say(f"stack: Kafka {bootstrap}, sandbox {sandbox.base_url}, Visma company 1 ({rows} CustTr rows, "
        f"{expected} payments) in {DATA}/F0001.db over the image's SQLite3 driver")

    output = expect(rootfs.run([*config, "config", "check"]), "vb2po config check", "vb2po config check: all good")
    say(output.strip().splitlines()[-1])

    logs = {name: work / f"{name}.log" for name in ("producer", "consumer")}
    procs = {name: rootfs.start([*config, "--log-format", "text", name], log) for name, log in logs.items()}
    try:
        deadline = time.monotonic() + SYNC_TIMEOUT_S
        applied = marked = 0
        while time.monotonic() < deadline:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    raise Failed(f"vb2po {name} exited early ({proc.returncode}):\n{logs[name].read_text()[-4000:]}")
            applied = len(sandbox.control.vouchers(CLIENT_KEY))
            if applied >= expected:
                marked = _markers(rootfs)
                if marked >= expected:
                    break
            time.sleep(0.5)
        else:
            raise Failed(f"after {SYNC_TIMEOUT_S}s: {applied}/{expected} payments applied, {marked} marked\n"
                         + "\n".join(f"--- {n} ---\n{p.read_text()[-3000:]}" for n, p in logs.items()))
    finally:
        codes = {name: _stop(proc) for name, proc in procs.items()}
    say(f"sync: {applied}/{expected} payments applied in PowerOffice and {marked} marked in Visma")
    for name, log in logs.items():
        text = log.read_text()
        if codes[name] != 0 or "Traceback" in text:
            raise Failed(f"vb2po {name} stopped with exit code {codes[name]}"
                         f"{' and logged a traceback' if 'Traceback' in text else ''}:\n{text[-4000:]}")
    say("producer and consumer stopped on SIGTERM with exit code 0, no traceback")
    written = sorted(str(p.relative_to(rootfs.tmp)) for p in rootfs.tmp.rglob("*")
                     if not p.is_relative_to(data))
    if any("__pycache__" in w for w in written):
        raise Failed(f"Python wrote bytecode at run time: {written}")
    say(f"written outside the test data in /tmp: {', '.join(written) or 'nothing'}")


def _markers(rootfs: Rootfs) -> int:
    """Marked rows, counted from inside the image as its user (a root connection from here would
    leave SQLite's -shm file owned by root, which the consumer could then not write)."""
    query = ("import pyodbc\n"
             f"c = pyodbc.connect({sqlite_connection_string(Path(DATA) / 'F0001.db')!r})\n"
             "print(c.execute('SELECT COUNT(*) FROM \"CustTr\" WHERE \"Gr4\" = 1').fetchone()[0])\n")
    result = rootfs.run(["python3", "-c", query], timeout=30)
    return int(result.stdout.strip()) if result.returncode == 0 and result.stdout.strip().isdigit() else 0


def _stop(proc: subprocess.Popen, timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _size(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


if __name__ == "__main__":
    sys.exit(smoke())
