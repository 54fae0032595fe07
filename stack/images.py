"""Images without a registry: a Debian rootfs from debootstrap, `docker import`ed, service images on top.

Every image is tagged with a hash of its inputs, so a cached image is found by name and rebuilt only
when a Dockerfile, a package list, a pinned wheel or the project's code changes. A user with a
registry can point any image at another name with CHAOS_IMAGE_<KEY> (e.g. CHAOS_IMAGE_REDIS=redis:7).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from harness.errors import HarnessError
from harness.progress import say
from stack.topology import OwnBuild
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
# clock: the LD_PRELOAD library clock-skew works through, copied into nodes that opt in (stack.clock)
SERVICE_KEYS = ("rabbitmq", "zookeeper", "redis", "proxy", "provider", "clock")
IMAGE_KEYS = ("base",) + SERVICE_KEYS
# The harness's own code an image carries, by image key (paths from the project root): the proxy runs
# faults.toxiproxy alone and the recording provider stack.provider alone, so a change elsewhere in the
# harness rebuilds neither. An app's images come from its stack file's `build:` (see OwnBuild).
APP_FILES = {"proxy": ("faults/__init__.py", "faults/toxiproxy"),
             "provider": ("stack/__init__.py", "stack/provider")}
# Never copied into an image nor hashed: caches and build leftovers.
APP_IGNORED = ("__pycache__", "*.pyc", "*.so", "*.egg-info", ".git")
# Compiled modules an image carries when scripts/build-native has built them (hashed like any input, so a
# rebuilt module rebuilds the image): the proxy's data path, built for CPython's stable ABI so that the
# host's build loads in the image's Debian python3. Without it the proxy pumps in Python.
APP_NATIVE = {"proxy": ("faults/toxiproxy/_pump.abi3.so",)}


def _app_file(path: Path, root: Path) -> bool:
    return path.is_file() and not any(fnmatch.fnmatch(part, pattern) for part in path.relative_to(root).parts
                                      for pattern in APP_IGNORED)


def _app_files(key: str) -> list[Path]:
    """The harness's own files image `key` carries: APP_FILES, and APP_NATIVE's modules that are built."""
    files = [path for part in APP_FILES.get(key, ()) for path in _files(PROJECT_ROOT / part)]
    return files + [PROJECT_ROOT / part for part in APP_NATIVE.get(key, ()) if (PROJECT_ROOT / part).is_file()]


def missing_native(key: str) -> list[str]:
    """APP_NATIVE's modules of image `key` that are not built here."""
    return [part for part in APP_NATIVE.get(key, ()) if not (PROJECT_ROOT / part).is_file()]


def _files(root: Path) -> list[Path]:
    """A file, or every file under a folder, minus APP_IGNORED, in a stable order."""
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if _app_file(p, root))


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
    for path in _app_files(key):
        _hash_file(h, path, PROJECT_ROOT)
    return h.hexdigest()[:12]


def base_image_name() -> str:
    return override_for("base") or f"{REPOSITORY}/base:{base_inputs_hash()}"


def own_image_name(build: OwnBuild, base_name: str | None = None) -> str:
    """The tag of an app image built from a stack file's `build:`: named after its context folder and
    hashed over everything the build reads (the context's files, the Dockerfile, the build args, the
    x-site requirements and the base image), so it is rebuilt exactly when one of those changes."""
    h = hashlib.sha256()
    h.update(f"{RECIPE_VERSION}|own|{base_name or base_image_name()}|{build.dockerfile}|{sorted(build.args)}|"
             f"{build.site}|".encode())
    context = Path(build.context)
    for path in _files(context):
        _hash_file(h, path, context)
    slug = re.sub(r"[^a-z0-9_.-]+", "-", context.name.lower()).strip("-.") or "app"
    return f"{REPOSITORY}/own-{slug}:{h.hexdigest()[:12]}"


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
    base = base_image_name()
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


def _site_packages(requirements: Path, progress: Progress) -> Path:
    """A requirements file installed on the host for Debian's python 3.11 into a cached folder (copied
    into an image as site/: the build itself needs no network, and no pip in the image)."""
    digest = hashlib.sha256(requirements.read_bytes() + platform.machine().encode()).hexdigest()[:12]
    site = cache_dir() / f"site-{digest}"
    if site.is_dir() and (site / ".complete").exists():
        return site
    shutil.rmtree(site, ignore_errors=True)
    progress(f"[images] pip: fetching wheels for {requirements} ...")
    cmd = [sys.executable, "-m", "pip", "install", "--progress-bar=off", "--target", str(site),
           "--python-version", "3.11", "--implementation", "cp", "--only-binary=:all:",
           "--no-compile", "-r", str(requirements)]
    for tag in _platform_tags():
        cmd += ["--platform", tag]
    # Unbuffered, so that pip's lines come through the pipe as it writes them.
    run_told(cmd, f"install {requirements.name}'s wheels from PyPI", PipOutput("[images] pip"), progress,
             env={"PYTHONUNBUFFERED": "1"})
    (site / ".complete").write_text("ok\n")
    return site


def _service_context(key: str, dest: Path, progress: Progress) -> None:
    shutil.copytree(IMAGES_DIR / key, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("requirements.txt"))
    requirements = IMAGES_DIR / key / "requirements.txt"
    if requirements.is_file():
        shutil.copytree(_site_packages(requirements, progress), dest / "site",
                        ignore=shutil.ignore_patterns(".complete", "__pycache__"))
    for path in _app_files(key):
        target = dest / "app" / path.relative_to(PROJECT_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    for part in missing_native(key):
        progress(f"[images] {key}: {part} is not built (scripts/build-native needs cargo); "
                 f"the image runs without it")


def _docker_build(client, ctx: Path, name: str, label: str, buildargs: dict[str, str], progress: Progress,
                  dockerfile: str = "Dockerfile") -> None:
    import docker.errors

    progress(f"[images] docker build {name}")
    started = time.monotonic()
    log: list[str] = []
    try:
        with telling(DockerBuildOutput(f"[images]   {label}"), progress) as take:
            for chunk in client.api.build(path=str(ctx), dockerfile=dockerfile, tag=name, buildargs=buildargs,
                                          network_mode="host", rm=True, forcerm=True, decode=True,
                                          labels={"chaos-harness.image": label}):
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


def build_service(client, key: str, name: str, base: str, progress: Progress) -> None:
    with tempfile.TemporaryDirectory(prefix=f"ctx-{key}-", dir=cache_dir()) as tmp:
        _service_context(key, Path(tmp), progress)
        _docker_build(client, Path(tmp), name, key, {"BASE": base}, progress)


def build_own(client, build: OwnBuild, name: str, base: str, progress: Progress) -> None:
    """Build a stack file's `build:` as Compose would, with BASE set to the harness's base image and,
    for x-site, the requirements installed on the host into the context's site/ folder."""
    context = Path(build.context)
    with tempfile.TemporaryDirectory(prefix="ctx-own-", dir=cache_dir()) as tmp:
        ctx = Path(tmp) / "context"
        shutil.copytree(context, ctx, ignore=shutil.ignore_patterns(*APP_IGNORED))
        if build.site:
            shutil.copytree(_site_packages(context / build.site, progress), ctx / "site",
                            ignore=shutil.ignore_patterns(".complete", "__pycache__"))
        _docker_build(client, ctx, name, f"own-{context.name}", {"BASE": base, **dict(build.args)}, progress,
                      dockerfile=build.dockerfile)


def ensure_own_images(client, nodes, base: str, progress: Progress = say, force: bool = False) -> None:
    """Build the images the stack's nodes name by `build:` that are not here yet (each once)."""
    done: set[str] = set()
    for node in nodes:
        build = getattr(node, "build", None)
        if build is None or node.image in done:
            continue
        done.add(node.image)
        if not force and image_exists(client, node.image):
            progress(f"[images] {node.image} is built (cached)")
        else:
            build_own(client, build, node.image, base, progress)
            repo = node.image.rsplit(":", 1)[0]
            prune_stale(client, repo.split("/", 1)[1], node.image)
        if build.tag:
            repo, _, tag = build.tag.rpartition(":") if ":" in build.tag.split("/")[-1] else (build.tag, "", "latest")
            client.api.tag(node.image, repo, tag)


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


@contextlib.contextmanager
def building(progress: Progress = say):
    """One builder at a time per Docker host on this machine: pytest-xdist workers that start together
    wait for the first to build what is missing, then find it cached."""
    import fcntl

    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    folder = cache_dir() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"images-{hashlib.sha256(where.encode()).hexdigest()[:12]}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"[images] another process is building images on {where}; waiting for it")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


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
