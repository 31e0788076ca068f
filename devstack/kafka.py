"""A real Apache Kafka (KRaft) broker or cluster for tests and local runs, from Maven jars.

No Kafka tarball can be downloaded here, but Maven Central can, so the broker jars are
fetched once with `mvn` into a cache outside git and started with plain `java` (what
`kafka-server-start.sh` boils down to). Background: /work/shared/domain/kafka-broker.md.

CLI:
    python -m devstack.kafka fetch            # fetch the jars only
    python -m devstack.kafka run [--nodes N]  # start, print KAFKA_BOOTSTRAP=..., block
"""
from __future__ import annotations

import argparse
import atexit
import base64
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Mapping, Sequence

from devstack.ports import free_ports

KAFKA_VERSION = "4.1.2"
SCALA_VERSION = "2.13"
LOG4J_VERSION = "2.24.3"  # Kafka 4.1's own log4j2 version
READY_LINE = "Kafka Server started"
POLL_INTERVAL_S = 0.1
DONE_MARKER = ".complete"

# Measured on the 2-core dev box: C1-only JIT starts a 3-node cluster ~30% faster and
# does not lower kafka-python throughput (the client is the bottleneck); SerialGC keeps
# the footprint small.
DEFAULT_JVM_OPTS: tuple[str, ...] = (
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-Djava.awt.headless=true",
)

# Every node: combined mode, fast group joins, the app creates its own topics, and few
# threads (2 cores).
COMMON_PROPERTIES: dict[str, str] = {
    "process.roles": "broker,controller",
    "inter.broker.listener.name": "PLAINTEXT",
    "controller.listener.names": "CONTROLLER",
    "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    "group.initial.rebalance.delay.ms": "0",
    "num.partitions": "1",
    "auto.create.topics.enable": "false",
    "num.network.threads": "2",
    "num.io.threads": "2",
    "background.threads": "2",
}

# Internal topics cannot have more replicas than brokers: a single node needs RF 1.
SINGLE_NODE_PROPERTIES: dict[str, str] = {
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
}

LOG4J2_PROPERTIES = """\
status = warn
name = devstack-kafka
# Keep logging until the JVM is gone: Kafka logs its own shutdown from a shutdown hook.
shutdownHook = disable
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""

POM_TEMPLATE = """\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>vb2po.devstack</groupId>
  <artifactId>kafka-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""

JARS: tuple[tuple[str, str, str], ...] = (
    ("org.apache.kafka", f"kafka_{SCALA_VERSION}", KAFKA_VERSION),
    ("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION),
    ("org.apache.logging.log4j", "log4j-api", LOG4J_VERSION),
    ("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION),
)


class KafkaError(RuntimeError):
    """The broker could not be fetched, started or stopped as asked."""


# ---------------------------------------------------------------------------- jars


def cache_root() -> Path:
    """Where fetched artefacts live: `$VB2PO_CACHE`, else `~/.cache/vb2po` (never in git)."""
    configured = os.environ.get("VB2PO_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "vb2po"


def ensure_jars() -> Path:
    """Return the folder of Kafka broker jars, fetching them with Maven on first use.

    A marker file is written only after a complete copy, so an interrupted fetch is redone.
    """
    libs = cache_root() / f"kafka-{KAFKA_VERSION}" / "libs"
    if (libs / DONE_MARKER).is_file():
        return libs
    libs.parent.mkdir(parents=True, exist_ok=True)
    with open(libs.parent / ".fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers fetch once, not over each other
        if not (libs / DONE_MARKER).is_file():
            _fetch_into(libs)
    return libs


def _fetch_into(libs: Path) -> None:
    """Fetch into an emptied `libs`; mark it complete only after Maven succeeded."""
    if shutil.which("mvn") is None:
        raise KafkaError("`mvn` not found on PATH: Maven is needed to fetch the Kafka jars")
    print(f"fetching Kafka {KAFKA_VERSION} jars with Maven (first run only)...", file=sys.stderr)
    started = time.monotonic()
    if libs.exists():
        shutil.rmtree(libs)  # leftovers of an interrupted fetch
    libs.mkdir(parents=True)
    _copy_dependencies(libs)
    (libs / DONE_MARKER).write_text(f"{KAFKA_VERSION}\n")
    count = sum(1 for _ in libs.glob("*.jar"))
    print(f"fetched {count} jars into {libs} in {time.monotonic() - started:.1f}s", file=sys.stderr)


def _copy_dependencies(target: Path) -> None:
    """Let Maven resolve the runtime closure of the broker jars and copy it to `target`."""
    deps = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in JARS
    )
    with tempfile.TemporaryDirectory(prefix="vb2po-kafka-pom-") as tmp:
        (Path(tmp) / "pom.xml").write_text(POM_TEMPLATE.format(dependencies=deps))
        cmd = [
            "mvn", "-B", "-q", "dependency:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={target}",
        ]
        result = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-4000:]
        raise KafkaError(f"mvn failed (exit {result.returncode}) fetching Kafka jars:\n{output}")


# ---------------------------------------------------------------------------- nodes


def random_cluster_id() -> str:
    """A Kafka cluster id as `kafka-storage.sh random-uuid` makes it, without a JVM start.

    Kafka's Uuid.randomUuid() is 16 random bytes in URL-safe base64 without padding that
    never starts with '-' (it would read as a command line flag).
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


@dataclass
class _Node:
    """One combined broker+controller process and the files it owns."""

    node_id: int
    port: int
    controller_port: int
    home: Path
    process: subprocess.Popen[bytes] | None = None
    log_offset: int = 0  # where this incarnation's log starts (the log file is appended)
    wanted: bool = False  # started and not deliberately stopped or killed since
    console: IO[bytes] | None = field(default=None, repr=False)

    @property
    def config_path(self) -> Path:
        return self.home / "server.properties"

    @property
    def log_path(self) -> Path:
        return self.home / "server.log"

    @property
    def console_path(self) -> Path:
        return self.home / "console.log"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def send_signal(self, sig: signal.Signals) -> None:
        """Signal the node's process group (own session), only while it is not yet reaped,
        so a recycled pid is never hit."""
        if self.alive():
            assert self.process is not None
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass

    def log_tail(self, lines: int = 40) -> str:
        """Last lines of the JVM console and of the server log, for error messages."""
        parts = []
        for path in (self.console_path, self.log_path):
            if path.is_file():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                if text:
                    parts.append(f"--- {path} ---\n" + "\n".join(text))
        return "\n".join(parts) or "(no log output)"


class _ClassArchive:
    """An AppCDS archive of the broker's classes: JVM startup drops from ~1.8 s to ~1.0 s.

    The apache/kafka Docker image does the same. The first node launched without an
    archive records one when it exits (to a temp name, renamed once complete); the archive
    sits next to the jars and is keyed by the java binary, so a new JDK records a new one.
    """

    def __init__(self, libs: Path) -> None:
        java = Path(shutil.which("java") or "java").resolve()
        stamp = java.stat().st_mtime_ns if java.exists() else 0
        key = hashlib.sha1(f"{java}:{stamp}".encode()).hexdigest()[:12]
        self.path = libs / f"kafka-classes-{key}.jsa"
        self._recorder: tuple[_Node, Path] | None = None

    def flags(self, node: _Node | None = None) -> list[str]:
        """JVM flags using the archive, or (for `node`) recording it if none exists yet."""
        if self.path.is_file():
            return [f"-XX:SharedArchiveFile={self.path}"]
        if node is None or self._recorder is not None:
            return []
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        self._recorder = (node, tmp)
        return [f"-XX:ArchiveClassesAtExit={tmp}"]

    def node_exited(self, node: _Node) -> None:
        """Publish the recorded archive if `node` recorded it and exited on its own."""
        if self._recorder is None or self._recorder[0] is not node:
            return
        tmp = self._recorder[1]
        self._recorder = None
        killed = node.process is not None and node.process.returncode == -signal.SIGKILL
        if tmp.is_file() and tmp.stat().st_size > 0 and not killed:
            os.replace(tmp, self.path)
        else:
            tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------- cluster

_LIVE_CLUSTERS: set["KafkaCluster"] = set()


@atexit.register
def _stop_leftover_clusters() -> None:
    """An interrupted run must not leave Java brokers behind."""
    for cluster in list(_LIVE_CLUSTERS):
        cluster.stop(timeout=5)


class KafkaCluster:
    """A KRaft cluster of `nodes` combined broker+controller JVMs on 127.0.0.1.

    Node indexes in `stop_node`/`kill_node`/`start_node` are 0-based (node.id = index + 1).
    `properties` overrides or adds broker settings on every node; `jvm_opts` replaces
    DEFAULT_JVM_OPTS.
    """

    def __init__(
        self,
        nodes: int = 1,
        workdir: Path | None = None,
        heap: str = "512m",
        jvm_opts: Sequence[str] = DEFAULT_JVM_OPTS,
        properties: Mapping[str, str] | None = None,
    ) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        self.node_count = nodes
        self.heap = heap
        self.jvm_opts = tuple(jvm_opts)
        self.extra_properties = dict(properties or {})
        self.cluster_id = random_cluster_id()
        self.workdir: Path | None = None
        self._given_workdir = Path(workdir) if workdir is not None else None
        self._nodes: list[_Node] = []
        self._libs: Path | None = None
        self._archive: _ClassArchive | None = None

    # -- public API ----------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """`127.0.0.1:p1,127.0.0.1:p2,...` for every node (running or not)."""
        if not self._nodes:
            raise KafkaError("cluster not started")
        return ",".join(f"127.0.0.1:{n.port}" for n in self._nodes)

    @property
    def node_ids(self) -> list[int]:
        return [n.node_id for n in self._nodes]

    def start(self, timeout: float = 120) -> KafkaCluster:
        """Write configs, format storage, start all nodes and wait until clients see them."""
        deadline = time.monotonic() + timeout
        self._libs = ensure_jars()
        self._archive = _ClassArchive(self._libs)
        self._prepare_workdir()
        _LIVE_CLUSTERS.add(self)
        try:
            self._nodes = self._plan_nodes()
            self._write_configs()
            self._format_storage(deadline)
            for node in self._nodes:
                self._launch(node)
            for node in self._nodes:
                self._wait_ready_line(node, deadline)
            self.wait_for_brokers(timeout=deadline - time.monotonic())
        except BaseException:
            self.stop(timeout=5)
            raise
        return self

    def stop(self, timeout: float = 30) -> None:
        """Stop every node (SIGTERM, then SIGKILL at the deadline); drop a temp workdir.

        All nodes get SIGTERM at once. A 3-node cluster takes ~5 s: the last raft leader
        waits for its (already gone) voters before it gives up.
        """
        for node in self._nodes:
            node.wanted = False
            node.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for node in self._nodes:
            self._reap(node, deadline)
        _LIVE_CLUSTERS.discard(self)
        if self._given_workdir is None and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def stop_node(self, index: int, timeout: float = 30) -> None:
        """Shut one node down cleanly (controlled shutdown), SIGKILL at the deadline."""
        node = self._nodes[index]
        node.wanted = False
        node.send_signal(signal.SIGTERM)
        self._reap(node, time.monotonic() + timeout)

    def kill_node(self, index: int) -> None:
        """SIGKILL one node, as a crash would: no controlled shutdown."""
        node = self._nodes[index]
        node.wanted = False
        node.send_signal(signal.SIGKILL)
        self._reap(node, time.monotonic() + 10)

    def start_node(self, index: int, timeout: float = 120) -> None:
        """Restart a stopped node with its same ports and data; wait until clients see it."""
        node = self._nodes[index]
        if node.alive():
            raise KafkaError(f"node {node.node_id} is still running")
        deadline = time.monotonic() + timeout
        self._launch(node)
        self._wait_ready_line(node, deadline)
        self.wait_for_brokers(timeout=deadline - time.monotonic())

    def node_pids(self) -> list[int]:
        """PIDs of the running node JVMs (for leak checks)."""
        return [n.process.pid for n in self._nodes if n.process is not None and n.alive()]

    def wait_for_brokers(
        self, node_ids: Iterable[int] | None = None, timeout: float = 60
    ) -> None:
        """Wait until a kafka-python client sees these brokers (default: every running
        node) in the cluster metadata, i.e. registered and unfenced."""
        expected = set(node_ids) if node_ids is not None else {
            n.node_id for n in self._nodes if n.wanted}
        deadline = time.monotonic() + timeout
        seen: set[int] = set()
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                seen = _broker_ids(self._running_bootstrap(), deadline)
                if expected <= seen:
                    return
            except Exception as exc:  # broker not accepting connections yet
                last_error = exc
            time.sleep(POLL_INTERVAL_S)
        raise KafkaError(
            f"clients saw brokers {sorted(seen)}, expected {sorted(expected)} within "
            f"{timeout:.0f}s (last error: {last_error!r})\n{self._tails()}"
        )

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- setup -----------------------------------------------------------------

    def _prepare_workdir(self) -> None:
        if self._given_workdir is not None:
            self._given_workdir.mkdir(parents=True, exist_ok=True)
            self.workdir = self._given_workdir
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix="vb2po-kafka-"))

    def _plan_nodes(self) -> list[_Node]:
        assert self.workdir is not None
        ports = free_ports(2 * self.node_count)  # distinct: a node's two listeners on one port fail to start
        return [
            _Node(i + 1, ports[2 * i], ports[2 * i + 1], self.workdir / f"node-{i + 1}")
            for i in range(self.node_count)
        ]

    def _write_configs(self) -> None:
        assert self.workdir is not None
        (self.workdir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self._nodes)
        for node in self._nodes:
            shutil.rmtree(node.home, ignore_errors=True)  # a new cluster id: old data is void
            node.home.mkdir(parents=True)
            props = self._node_properties(node, voters)
            node.config_path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def _node_properties(self, node: _Node, voters: str) -> dict[str, str]:
        props = dict(COMMON_PROPERTIES)
        if self.node_count == 1:
            props.update(SINGLE_NODE_PROPERTIES)
        props.update({
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},"
                         f"CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "log.dirs": str(node.data_dir),
        })
        props.update(self.extra_properties)
        return props

    def _java(self, main_class: str, *args: str, node: _Node, cds: list[str]) -> list[str]:
        assert self._libs is not None and self.workdir is not None
        return [
            "java", f"-Xmx{self.heap}", *self.jvm_opts, *cds,
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={node.home}",
            "-cp", f"{self._libs}/*", main_class, *args,
        ]

    def _format_storage(self, deadline: float) -> None:
        """Format every node's log dir with the shared cluster id (in parallel: one JVM each)."""
        assert self._archive is not None
        procs = [
            (node, subprocess.Popen(
                self._java("kafka.tools.StorageTool", "format", "-t", self.cluster_id,
                           "-c", str(node.config_path), node=node, cds=self._archive.flags()),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True))
            for node in self._nodes
        ]
        failures = []
        for node, proc in procs:
            try:
                out, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, _ = proc.communicate()
            if proc.returncode != 0:
                failures.append(f"node {node.node_id} (exit {proc.returncode}):\n"
                                f"{out.decode(errors='replace')[-4000:]}")
        if failures:
            raise KafkaError("formatting Kafka storage failed for " + "\n".join(failures))

    # -- processes ---------------------------------------------------------------

    def _launch(self, node: _Node) -> None:
        assert self._archive is not None
        node.log_offset = node.log_path.stat().st_size if node.log_path.exists() else 0
        if node.console is not None:
            node.console.close()
        node.console = open(node.console_path, "ab")
        node.process = subprocess.Popen(
            self._java("kafka.Kafka", str(node.config_path), node=node,
                       cds=self._archive.flags(node)),
            stdin=subprocess.DEVNULL, stdout=node.console, stderr=subprocess.STDOUT,
            cwd=node.home, start_new_session=True,
        )
        node.wanted = True

    def _wait_ready_line(self, node: _Node, deadline: float) -> None:
        """Poll this incarnation's part of the log until the broker says it is started."""
        while time.monotonic() < deadline:
            if _log_contains(node.log_path, node.log_offset, READY_LINE):
                return
            if not node.alive():
                code = node.process.returncode if node.process else None
                raise KafkaError(
                    f"Kafka node {node.node_id} exited (code {code}) before it was ready:\n"
                    f"{node.log_tail()}"
                )
            time.sleep(POLL_INTERVAL_S)
        raise KafkaError(
            f"Kafka node {node.node_id} did not log {READY_LINE!r} in time:\n{node.log_tail()}"
        )

    def _reap(self, node: _Node, deadline: float) -> None:
        """Wait for the node to exit; SIGKILL its process group at the deadline."""
        if node.process is None:
            return
        try:
            node.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            node.send_signal(signal.SIGKILL)
            node.process.wait(timeout=10)
        if node.console is not None:
            node.console.close()
            node.console = None
        if self._archive is not None:
            self._archive.node_exited(node)

    def _check_alive(self) -> None:
        """Fail fast when a node that should be running has exited."""
        for node in self._nodes:
            if node.wanted and not node.alive():
                code = node.process.returncode if node.process else None
                raise KafkaError(f"Kafka node {node.node_id} exited (code {code}):\n"
                                 f"{node.log_tail()}")

    def _running_bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{n.port}" for n in self._nodes if n.wanted)

    def _tails(self) -> str:
        return "\n".join(n.log_tail(20) for n in self._nodes)


def _log_contains(path: Path, offset: int, needle: str) -> bool:
    if not path.is_file():
        return False
    with path.open("rb") as fh:
        fh.seek(offset)
        return needle.encode() in fh.read()


def _broker_ids(bootstrap: str, deadline: float) -> set[int]:
    """Broker ids in the cluster metadata, as a kafka-python client sees them."""
    from kafka import KafkaAdminClient  # lazily: `fetch` must work without kafka-python

    budget_ms = int(max(1.0, min(10.0, deadline - time.monotonic())) * 1000)
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="devstack-readiness",
        request_timeout_ms=budget_ms, bootstrap_timeout_ms=budget_ms,
    )
    try:
        return {b["broker_id"] for b in admin.describe_cluster()["brokers"]}
    finally:
        admin.close()


# ---------------------------------------------------------------------------- CLI


def _run(nodes: int, heap: str) -> int:
    """Start a cluster, print its bootstrap string, block until SIGINT/SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    started = time.monotonic()
    with KafkaCluster(nodes=nodes, heap=heap) as cluster:
        print(f"started {nodes} node(s) in {time.monotonic() - started:.1f}s", file=sys.stderr)
        print(f"KAFKA_BOOTSTRAP={cluster.bootstrap_servers}", flush=True)
        stop.wait()
        print("stopping Kafka...", file=sys.stderr)
    return 0


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.kafka", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="fetch the Kafka jars into the cache")
    run = sub.add_parser("run", help="start a local cluster until interrupted")
    run.add_argument("--nodes", type=int, default=1)
    run.add_argument("--heap", default="512m")
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        if args.command == "fetch":
            print(ensure_jars())
            return 0
        return _run(args.nodes, args.heap)
    except KafkaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
