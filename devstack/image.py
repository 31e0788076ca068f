"""`make image`: the vb2po OCI image, built without a container engine (no Docker daemon).

Two layers, assembled with umoci into an OCI image layout:
  1. Debian: `mmdebstrap` (essential variant, merged /usr) with python3, unixODBC (unixodbc,
     odbcinst), FreeTDS's ODBC driver (tdsodbc, registered in odbcinst.ini as "FreeTDS"), the
     SQLite3 ODBC driver (libsqliteodbc: the Visma of the smoke test and the demo), CA
     certificates, tzdata, and the user vb2po (uid/gid 10001). Built once per recipe (~30 s)
     and cached under ~/.cache/vb2po/image/ ($VB2PO_CACHE); the .deb files are cached too.
  2. vb2po: the project's wheel and its dependencies (wheels cached per dependency list),
     installed into /usr/local/lib/python3.11/dist-packages and byte-compiled at build time
     (unchecked-hash .pyc files), so a read-only root filesystem has nothing to write.

The result is named and tagged from pyproject's `version`:
  build/image/vb2po                 OCI image layout, tag <version>  (skopeo/umoci: oci:build/image/vb2po:<version>)
  build/vb2po-<version>.oci.tar     the same as one file (skopeo: oci-archive:build/vb2po-<version>.oci.tar)
A second `make image` with nothing changed reuses everything; a change to the sources rebuilds
the vb2po layer only (seconds).

Knobs (environment): VB2PO_IMAGE_REFRESH=1 builds the Debian layer and the dependency wheels
again (security updates); VB2PO_IMAGE_DEBS="/path/a.deb /path/b.deb" installs local .deb
files into the Debian layer, their dependencies from Debian (e.g. Microsoft's ODBC driver,
with ACCEPT_EULA=Y: README, "The container image").
"""
from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from devstack.kafka import cache_root

ROOT = Path(__file__).resolve().parent.parent
NAME = "vb2po"
SUITE = "bookworm"
SOURCES = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
)
DEBIAN_PACKAGES = ("python3", "libstdc++6", "unixodbc", "odbcinst", "tdsodbc", "libsqliteodbc", "ca-certificates", "tzdata")
# Documentation, manual pages and translations are left out of the image (copyright files stay).
DPKG_OPTIONS = ("path-exclude=/usr/share/man/*", "path-exclude=/usr/share/doc/*",
                "path-include=/usr/share/doc/*/copyright", "path-exclude=/usr/share/locale/*",
                "path-exclude=/usr/share/info/*")
UID = GID = 10001
USER = "vb2po"
SITE_PACKAGES = "usr/local/lib/python3.11/dist-packages"  # on Debian python3's sys.path
ENTRYPOINT = "/usr/local/bin/vb2po"
ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",  # the .pyc files are made at build time; the root is read-only
    "PYTHONUNBUFFERED": "1",
    "HOME": "/tmp",                  # the one writable place (an emptyDir in the chart)
    "TMPDIR": "/tmp",
}
# Bump when the recipe below changes in a way the keys do not see.
RECIPE_VERSION = "1"

OUTPUT = ROOT / "build" / "image" / NAME


def say(message: str) -> None:
    print(f"image: {message}", file=sys.stderr, flush=True)


def project_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def project_dependencies() -> list[str]:
    return list(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])


def image_cache() -> Path:
    return cache_root() / "image"


def _digest(*parts: object) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise SystemExit(f"image: `{' '.join(cmd[:4])} ...` failed ({result.returncode}):\n"
                         f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder at a time per cache or output folder (parallel test runs share the cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _require_tools() -> None:
    missing = [t for t in ("mmdebstrap", "umoci") if shutil.which(t) is None]
    if missing:
        raise SystemExit(f"image: {' and '.join(missing)} missing: run `make deps` (installs the Debian packages)")
    if os.geteuid() != 0:
        raise SystemExit("image: run as root (mmdebstrap's root mode and umoci keep the image's file owners)")


# -- layer 1: Debian --------------------------------------------------------------------------
def _extra_debs() -> list[Path]:
    debs = [Path(p).resolve() for p in os.environ.get("VB2PO_IMAGE_DEBS", "").split()]
    for deb in debs:
        if not deb.is_file() or deb.suffix != ".deb":
            raise SystemExit(f"image: VB2PO_IMAGE_DEBS names {deb}, which is not a .deb file")
    return debs


def _hooks() -> list[str]:
    passwd = f"{USER}:x:{UID}:{GID}:vb2po:/tmp:/usr/sbin/nologin"
    hooks = [
        f"--customize-hook=echo '{passwd}' >> \"$1/etc/passwd\"",
        f"--customize-hook=echo '{USER}:x:{GID}:' >> \"$1/etc/group\"",
        f"--customize-hook=echo '{USER}:!:1::::::' >> \"$1/etc/shadow\"",
        # what only the build needs, and logs of the build
        "--customize-hook=rm -rf \"$1\"/var/log/apt \"$1\"/var/log/dpkg.log \"$1\"/var/log/alternatives.log "
        "\"$1\"/var/cache/debconf/*-old \"$1\"/var/lib/dpkg/*-old",
    ]
    if os.environ.get("ACCEPT_EULA", "").upper() == "Y":  # Microsoft's ODBC driver asks at install
        selections = "\\n".join(f"{p} msodbcsql/ACCEPT_EULA boolean true" for p in ("msodbcsql17", "msodbcsql18"))
        hooks.insert(0, f"--essential-hook=printf '{selections}\\n' | chroot \"$1\" debconf-set-selections")
    return hooks


def base_key() -> str:
    debs = [(d.name, _file_digest(d)) for d in _extra_debs()]
    return _digest(RECIPE_VERSION, SUITE, SOURCES, DEBIAN_PACKAGES, DPKG_OPTIONS, _hooks(), debs)[:16]


def base_layout(refresh: bool = False) -> Path:
    """The OCI layout holding only the Debian layer (tag `base`), built once per recipe."""
    cache = image_cache()
    folder = cache / f"base-{base_key()}"
    with _locked(cache / ".base.lock"):
        if (folder / ".complete").is_file() and not refresh:
            return folder / "layout"
        debs = cache / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        extra = _extra_debs()
        packages = ", ".join(DEBIAN_PACKAGES + tuple(d.name for d in extra))
        say(f"building the Debian layer with mmdebstrap ({SUITE}: {packages}) ...")
        began = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="vb2po-image-base-", dir=cache) as tmp:
            tar = Path(tmp) / "debian.tar"
            # local .deb files are bind-mounted into the chroot at their own path, where dpkg finds them
            automount = ["--hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount"] if extra else []
            cmd = ["mmdebstrap", "--mode=root", "--variant=essential", "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
                   *automount,
                   "--include=" + ",".join([*DEBIAN_PACKAGES, *(str(d) for d in extra)]),
                   *(f"--dpkgopt={o}" for o in DPKG_OPTIONS),
                   "--skip=download/empty", "--skip=essential/unlink",
                   "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/",
                   f"--setup-hook=sync-in {debs} /var/cache/apt/archives/",
                   f"--customize-hook=sync-out /var/cache/apt/archives {debs}",
                   *_hooks(), SUITE, str(tar), *SOURCES]
            _run(cmd)
            layout = Path(tmp) / "layout"
            _run(["umoci", "init", "--layout", str(layout)])
            _run(["umoci", "new", "--image", f"{layout}:base"])
            _run(["umoci", "raw", "add-layer", "--image", f"{layout}:base", "--history.author", "vb2po make image",
                  "--history.created_by", f"mmdebstrap {SUITE}: {' '.join(DEBIAN_PACKAGES)}", str(tar)])
            packages = _run(["tar", "-xOf", str(tar), "./var/lib/dpkg/status"]).stdout
            (Path(tmp) / "packages.txt").write_text("\n".join(
                line.split(": ", 1)[1] for line in packages.splitlines() if line.startswith("Package: ")) + "\n")
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            for name in ("layout", "packages.txt"):
                shutil.move(str(Path(tmp) / name), folder / name)
        (folder / ".complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z\n"))
        for old in sorted(cache.glob("base-*"), key=lambda p: p.stat().st_mtime)[:-2]:  # keep the newest two
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)
        say(f"Debian layer built in {time.monotonic() - began:.0f}s (cached in {folder})")
        return folder / "layout"


# -- layer 2: vb2po ---------------------------------------------------------------------------
def _pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]


def dependency_wheels(refresh: bool = False) -> Path:
    """Wheels of the project's dependencies, fetched once per dependency list and Python version."""
    cache = image_cache()
    deps = project_dependencies()
    folder = cache / f"wheels-{_digest(deps, sys.version_info[:2], sys.platform)[:16]}"
    with _locked(cache / ".wheels.lock"):
        if (folder / ".complete").is_file() and not refresh:
            return folder
        say(f"fetching the wheels of {len(deps)} dependencies from PyPI ...")
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        _run(_pip("wheel", "-q", "--prefer-binary", "--wheel-dir", str(folder), *deps))
        (folder / ".complete").write_text("")
        return folder


def _source_files() -> list[Path]:
    """What goes into the project's wheel (packages as in pyproject), for the build key."""
    packages = ("vb2po", "producer", "consumer", "schemas", "admin", "sandbox", "devstack")
    files = [ROOT / "pyproject.toml", ROOT / "README.md"]
    for package in packages:
        files += sorted(p for p in (ROOT / package).rglob("*") if p.is_file() and "__pycache__" not in p.parts
                        and p.suffix in (".py", ".json"))
    return files


def source_key() -> str:
    h = hashlib.sha256()
    for path in _source_files():
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _launcher() -> str:
    return "#!/usr/bin/python3 -s\nimport sys\n\nfrom vb2po.cli import main\n\nsys.exit(main())\n"


def app_layer(wheels: Path, work: Path) -> Path:
    """A tar of /usr/local: vb2po and its dependencies, byte-compiled."""
    dist = work / "dist"
    for scratch in [ROOT / "build" / "lib", *(ROOT / "build").glob("bdist.*")]:
        shutil.rmtree(scratch, ignore_errors=True)  # setuptools' scratch space would keep deleted modules
    _run(_pip("wheel", "-q", "--no-deps", "--wheel-dir", str(dist), str(ROOT)))
    stage = work / "stage"
    site = stage / SITE_PACKAGES
    wheel = next(dist.glob(f"{NAME}-*.whl"))
    _run(_pip("install", "-q", "--no-index", "--find-links", str(wheels), "--target", str(site),
              "--no-compile", "--no-warn-script-location", str(wheel)))
    shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts with this machine's interpreter
    launcher = stage / ENTRYPOINT.lstrip("/")
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.write_text(_launcher())
    launcher.chmod(0o755)
    # unchecked-hash: valid whatever the files' times; Python 3.11 here and in Debian share the format
    _run([sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
          "-s", str(stage), "-p", "/", str(site)])
    for path in stage.rglob("*"):
        path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
    tar = work / "vb2po.tar"
    _run(["tar", "--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0",
          "-C", str(stage), "-cf", str(tar), "usr/local"])
    return tar


# -- the image --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Image:
    layout: Path
    tag: str
    archive: Path

    @property
    def ref(self) -> str:
        return f"{self.layout}:{self.tag}"

    def manifest(self) -> dict:
        index = json.loads((self.layout / "index.json").read_text())
        entry = next(m for m in index["manifests"]
                     if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == self.tag)
        return json.loads(self._blob(entry["digest"]).read_text())

    def config(self) -> dict:
        return json.loads(self._blob(self.manifest()["config"]["digest"]).read_text())

    def compressed_size(self) -> int:
        return sum(layer["size"] for layer in self.manifest()["layers"])

    def _blob(self, digest: str) -> Path:
        algorithm, _, value = digest.partition(":")
        return self.layout / "blobs" / algorithm / value


def build(refresh: bool | None = None) -> Image:
    """Build the image, or reuse the one in build/image when nothing it is made of changed."""
    _require_tools()
    refresh = bool(os.environ.get("VB2PO_IMAGE_REFRESH")) if refresh is None else refresh
    version = project_version()
    archive = ROOT / "build" / f"{NAME}-{version}.oci.tar"
    image = Image(OUTPUT, version, archive)
    began = time.monotonic()
    with _locked(OUTPUT.parent / ".build.lock"):
        base = base_layout(refresh)
        wheels = dependency_wheels(refresh)
        key = _digest(RECIPE_VERSION, str(base), str(wheels), source_key(), ENV, UID)
        stamp = OUTPUT.parent / f".{NAME}-build-key"
        if not refresh and stamp.is_file() and stamp.read_text() == key and archive.is_file():
            say(f"{NAME}:{version} is up to date ({image.compressed_size() / 1e6:.0f} MB compressed): oci:{image.ref}")
            return image
        with tempfile.TemporaryDirectory(prefix="vb2po-image-", dir=OUTPUT.parent) as tmp:
            work = Path(tmp)
            say("building the vb2po layer (the project's wheel and its dependencies) ...")
            layer = app_layer(wheels, work)
            layout = work / "layout"
            shutil.copytree(base, layout)
            _run(["umoci", "raw", "add-layer", "--image", f"{layout}:base", "--tag", version,
                  "--history.author", "vb2po make image", "--history.created_by", f"vb2po {version} and its dependencies",
                  str(layer)])
            _run(["umoci", "rm", "--image", f"{layout}:base"])
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            config = ["umoci", "config", "--image", f"{layout}:{version}", "--no-history",
                      f"--config.user={UID}:{GID}", f"--config.entrypoint={ENTRYPOINT}", "--config.cmd=--help",
                      "--config.workingdir=/tmp", "--os=linux", "--architecture=amd64", f"--created={created}",
                      "--author=vb2po make image",
                      f"--config.label=org.opencontainers.image.title={NAME}",
                      f"--config.label=org.opencontainers.image.version={version}",
                      "--config.label=org.opencontainers.image.description=Visma Business payments and credit "
                      "blocks into PowerOffice Go over Kafka",
                      f"--manifest.annotation=org.opencontainers.image.version={version}",
                      *(f"--config.env={k}={v}" for k, v in ENV.items())]
            _run(config)
            _run(["umoci", "gc", "--layout", str(layout)])
            archive_tmp = work / "image.oci.tar"
            _run(["tar", "--sort=name", "--owner=0", "--group=0", "--numeric-owner", "-C", str(layout),
                  "-cf", str(archive_tmp), "."])
            stamp.unlink(missing_ok=True)
            shutil.rmtree(OUTPUT, ignore_errors=True)
            shutil.move(str(layout), OUTPUT)
            shutil.move(str(archive_tmp), archive)
            stamp.write_text(key)
    say(f"built {NAME}:{version} in {time.monotonic() - began:.0f}s: {image.compressed_size() / 1e6:.0f} MB compressed "
        f"({len(image.manifest()['layers'])} layers); oci:{image.ref}, oci-archive:{archive.relative_to(ROOT)}")
    return image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.image", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("build", help="build the image (or reuse it when nothing changed)")
    make.add_argument("--refresh", action="store_true", help="build the Debian layer and the dependency wheels again")
    sub.add_parser("smoke", help="build or reuse the image, then run vb2po from inside its root filesystem "
                                 "against a local Kafka, the sandbox and a SQLite Visma")
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.refresh or None)
        return 0
    from devstack.image_smoke import smoke

    return smoke()


if __name__ == "__main__":
    sys.exit(main())
