"""Images without a registry: a Debian rootfs from debootstrap, `docker import`ed, service images on top.

Every image is tagged with a hash of its inputs, so a cached image is found by name and rebuilt only
when a Dockerfile, a package list, a pinned wheel or the project's code changes. A user with a
registry can point any image at another name with CHAOS_IMAGE_<KEY> (e.g. CHAOS_IMAGE_REDIS=redis:7).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from harness.errors import HarnessError
from harness.progress import say
from stack.build_output import (DebootstrapOutput, DockerBuildOutput, PipOutput, Progress, StepOutput,
                                run_told, telling)

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parent
IMAGES_DIR = HERE / "images"
REPOSITORY = "chaos-harness"
SUITE = os.environ.get("CHAOS_DEBIAN_SUITE", "bookworm")
# Everything every container may need: python3 for probes and services, tini as PID 1,
# iproute2/iptables for the partition helper that joins a target's network namespace.
BASE_PACKAGES = ("python3", "tini", "iproute2", "iptables", "ca-certificates", "procps", "netbase")
# Bump when the recipe below changes in a way the hashed inputs do not show.
RECIPE_VERSION = "1"
SERVICE_KEYS = ("rabbitmq", "zookeeper", "redis", "services")
IMAGE_KEYS = ("base",) + SERVICE_KEYS
APP_PACKAGES = ("harness", "faults", "stack")
# Left out of the services image and of its hash: caches, the compiled history scanner (its Rust
# sources, its 70 MB cargo target and the host-built module: the services never check a history),
# and the image recipes themselves (hashed per image).
APP_IGNORED = ("__pycache__", "*.pyc", "*.so", "*.egg-info", "native", "images")


def _app_file(path: Path, root: Path) -> bool:
    return path.is_file() and not any(fnmatch.fnmatch(part, pattern) for part in path.relative_to(root).parts
                                      for pattern in APP_IGNORED)


def cache_dir() -> Path:
    root = os.environ.get("CHAOS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "chaos-harness")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


# ----------------------------------------------------------------------------------------------
# The Debian mirror, read from apt's own configuration (never written into the repository).

def _deb822_stanzas(text: str) -> Iterable[dict[str, str]]:
    stanza: dict[str, str] = {}
    for raw in text.splitlines() + [""]:
        line = raw.split("#", 1)[0].rstrip() if not raw.startswith("#") else ""
        if not raw.strip():
            if stanza:
                yield stanza
            stanza = {}
            continue
        if not line:
            continue
        if line[0].isspace() and stanza:
            continue  # continuation lines (e.g. an inline key) do not matter here
        key, _, value = line.partition(":")
        stanza[key.strip().lower()] = value.strip()


def apt_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The URI of the main Debian archive apt is configured with (not the security archive)."""
    override = os.environ.get("CHAOS_DEBIAN_MIRROR")
    if override:
        return override
    candidates: list[tuple[str, str]] = []  # (uri, suites)
    files = [sources_dir / "sources.list"] + sorted((sources_dir / "sources.list.d").glob("*.list"))
    for path in files:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split("#", 1)[0].split()
            if len(parts) >= 3 and parts[0] == "deb":
                rest = parts[1:]
                if rest[0].startswith("["):
                    while rest and not rest[0].endswith("]"):
                        rest = rest[1:]
                    rest = rest[1:]
                if len(rest) >= 2:
                    candidates.append((rest[0], rest[1]))
    for path in sorted((sources_dir / "sources.list.d").glob("*.sources")):
        for stanza in _deb822_stanzas(path.read_text(errors="replace")):
            if "deb" in stanza.get("types", "").split() and stanza.get("enabled", "yes") != "no":
                for uri in stanza.get("uris", "").split():
                    candidates.append((uri, stanza.get("suites", "")))
    for uri, suites in candidates:
        names = suites.split()
        if any(not s.endswith(("-security", "-updates", "-backports")) for s in names) \
                and uri.rstrip("/").endswith("/debian"):
            return uri
    raise HarnessError(
        "no Debian archive found in apt's sources (/etc/apt); set CHAOS_DEBIAN_MIRROR to a Debian mirror URL")


# ----------------------------------------------------------------------------------------------
# Input hashes and names.

def _hash_file(h: "hashlib._Hash", path: Path, rel_to: Path) -> None:
    h.update(str(path.relative_to(rel_to)).encode())
    h.update(b"\0")
    h.update(path.read_bytes())
    h.update(b"\0")


def _hash_files(h: "hashlib._Hash", root: Path, rel_to: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith(".pyc") \
                and ".egg-info" not in str(path):
            _hash_file(h, path, rel_to)


def base_inputs_hash() -> str:
    h = hashlib.sha256()
    h.update(f"{RECIPE_VERSION}|{SUITE}|{' '.join(BASE_PACKAGES)}|{platform.machine()}".encode())
    return h.hexdigest()[:12]


def service_inputs_hash(key: str, base_name: str) -> str:
    h = hashlib.sha256()
    h.update(f"{RECIPE_VERSION}|{base_name}|".encode())
    _hash_files(h, IMAGES_DIR / key, IMAGES_DIR)
    if key == "services":
        for package in APP_PACKAGES:
            for path in sorted(p for p in (PROJECT_ROOT / package).rglob("*") if _app_file(p, PROJECT_ROOT)):
                _hash_file(h, path, PROJECT_ROOT)
    return h.hexdigest()[:12]


def override_for(key: str) -> str | None:
    return os.environ.get(f"CHAOS_IMAGE_{key.upper()}") or None


@dataclass(frozen=True)
class ImagePlan:
    """Which name each image has, and whether it is ours to build."""

    names: dict[str, str]
    built_here: frozenset[str]


def plan_images() -> ImagePlan:
    names: dict[str, str] = {}
    ours: set[str] = set()
    base = override_for("base") or f"{REPOSITORY}/base:{base_inputs_hash()}"
    names["base"] = base
    if not override_for("base"):
        ours.add("base")
    for key in SERVICE_KEYS:
        name = override_for(key)
        if name is None:
            name = f"{REPOSITORY}/{key}:{service_inputs_hash(key, base)}"
            ours.add(key)
        names[key] = name
    return ImagePlan(names=names, built_here=frozenset(ours))


# ----------------------------------------------------------------------------------------------
# Building.

def image_exists(client, name: str) -> bool:
    import docker.errors

    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


def debootstrap(rootfs: Path, mirror: str, progress: Progress = say) -> None:
    """A minbase rootfs of SUITE with BASE_PACKAGES, its progress told while it runs (a couple of minutes)."""
    progress(f"[images] debootstrap {SUITE} ({len(BASE_PACKAGES)} extra packages) from {mirror} ...")
    started = time.monotonic()
    run_told(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
              SUITE, str(rootfs), mirror], f"debootstrap a {SUITE} rootfs from {mirror}",
             DebootstrapOutput("[images] debootstrap"), progress)
    progress(f"[images] debootstrap done in {time.monotonic() - started:.0f}s")


def build_base(client, name: str, progress: Progress) -> None:
    if shutil.which("debootstrap") is None:
        raise HarnessError("debootstrap is not installed: run `apt-get install -y debootstrap` "
                           "(it builds the base image, since no registry is reachable)")
    if os.geteuid() != 0:
        raise HarnessError("building the base image runs debootstrap, which needs root")
    mirror = apt_mirror()
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=cache_dir()))
    rootfs = work / "rootfs"
    try:
        debootstrap(rootfs, mirror, progress)
        # Keep package maintainer scripts from starting services during later apt-get installs.
        policy = rootfs / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        (rootfs / "etc/apt/apt.conf.d/90chaos").write_text(
            'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n')
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in (rootfs / sub).glob("*"):
                if p.is_file():
                    p.unlink()
        for sub in ("dev", "proc", "sys"):
            shutil.rmtree(rootfs / sub, ignore_errors=True)
            (rootfs / sub).mkdir()
        tarball = work / "rootfs.tar"
        progress("[images] packing rootfs ...")
        run_told(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tarball), "."], "pack the rootfs",
                 StepOutput("[images] tar"), progress)
        repo, tag = name.rsplit(":", 1)
        progress(f"[images] docker import -> {name}")
        with telling(StepOutput("[images] docker import"), progress):
            client.api.import_image_from_file(
                str(tarball), repository=repo, tag=tag,
                changes=["ENV LANG=C.UTF-8", 'CMD ["/bin/bash"]',
                         f"LABEL chaos-harness.image=base chaos-harness.inputs={tag}"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _platform_tags() -> list[str]:
    machine = platform.machine()
    return [f"manylinux_2_{v}_{machine}" for v in (36, 34, 31, 28, 27, 24, 17)] + [f"manylinux2014_{machine}"]


def _site_packages(progress: Progress) -> Path:
    """Wheels for the services image, installed for Debian's python 3.11 into a cached folder."""
    requirements = IMAGES_DIR / "services" / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes() + platform.machine().encode()).hexdigest()[:12]
    site = cache_dir() / f"site-{digest}"
    if site.is_dir() and (site / ".complete").exists():
        return site
    shutil.rmtree(site, ignore_errors=True)
    progress("[images] pip: fetching wheels for the services image ...")
    cmd = [sys.executable, "-m", "pip", "install", "--progress-bar=off", "--target", str(site),
           "--python-version", "3.11", "--implementation", "cp", "--only-binary=:all:",
           "--no-compile", "-r", str(requirements)]
    for tag in _platform_tags():
        cmd += ["--platform", tag]
    # Unbuffered, so that pip's lines come through the pipe as it writes them.
    run_told(cmd, "download the services' wheels from PyPI", PipOutput("[images] pip"), progress,
             env={"PYTHONUNBUFFERED": "1"})
    (site / ".complete").write_text("ok\n")
    return site


def _services_context(dest: Path, progress: Progress) -> None:
    shutil.copy(IMAGES_DIR / "services" / "Dockerfile", dest / "Dockerfile")
    shutil.copytree(_site_packages(progress), dest / "site",
                    ignore=shutil.ignore_patterns(".complete", "__pycache__"))
    app = dest / "app"
    for package in APP_PACKAGES:
        shutil.copytree(PROJECT_ROOT / package, app / package, ignore=shutil.ignore_patterns(*APP_IGNORED))


def build_service(client, key: str, name: str, base: str, progress: Progress) -> None:
    import docker.errors

    with tempfile.TemporaryDirectory(prefix=f"ctx-{key}-", dir=cache_dir()) as tmp:
        ctx = Path(tmp)
        if key == "services":
            _services_context(ctx, progress)
        else:
            shutil.copytree(IMAGES_DIR / key, ctx, dirs_exist_ok=True)
        progress(f"[images] docker build {name}")
        started = time.monotonic()
        log: list[str] = []
        try:
            with telling(DockerBuildOutput(f"[images]   {key}"), progress) as take:
                for chunk in client.api.build(path=str(ctx), tag=name, buildargs={"BASE": base},
                                              network_mode="host", rm=True, forcerm=True, decode=True,
                                              labels={"chaos-harness.image": key}):
                    if "error" in chunk:
                        raise HarnessError(f"docker build of {name} failed: {chunk['error'].strip()}",
                                           detail="\n".join(log[-25:]))
                    for text in chunk.get("stream", "").splitlines():
                        if text.strip():
                            log.append(text.rstrip())
                            take(text)
        except docker.errors.APIError as exc:
            raise HarnessError(f"docker build of {name} failed: {exc.explanation or exc}") from None
        progress(f"[images] built {name} in {time.monotonic() - started:.0f}s")


def prune_stale(client, key: str, keep: str, older_than_s: float = 1800.0) -> None:
    """Remove earlier builds of one image (other input hashes), so code changes do not fill the disk.

    Only images built a while ago, and not in use by a container, go: a run that resolved its image
    names a moment ago must still find them.
    """
    import datetime

    import docker.errors

    now = datetime.datetime.now(datetime.timezone.utc)
    for image in client.images.list(name=f"{REPOSITORY}/{key}"):
        if keep in image.tags:
            continue
        created = datetime.datetime.fromisoformat(image.attrs["Created"][:26].rstrip("Z") + "+00:00")
        if (now - created).total_seconds() < older_than_s:
            continue
        for tag in image.tags:
            try:
                client.images.remove(tag, noprune=False)
            except docker.errors.APIError:
                pass  # in use by a container, or already gone


def ensure_images(client, progress: Progress = say, force: bool = False) -> dict[str, str]:
    """Build whatever image is missing (or everything with force); return key -> image name."""
    plan = plan_images()
    for key in IMAGE_KEYS:
        name = plan.names[key]
        if key not in plan.built_here:
            if not image_exists(client, name):
                raise HarnessError(f"image {name} (from CHAOS_IMAGE_{key.upper()}) is not present locally "
                                   "and no registry is reachable to pull it")
            continue
        if not force and image_exists(client, name):
            progress(f"[images] {name} is built (cached)")
            continue
        if key == "base":
            build_base(client, name, progress)
        else:
            build_service(client, key, name, plan.names["base"], progress)
        prune_stale(client, key, name)
    return dict(plan.names)
