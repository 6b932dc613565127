"""Peer images built here from Debian packages (no registry needed): a debootstrapped base and
layers on it, each tagged with the hash of its recipe so an unchanged recipe is never rebuilt."""

from __future__ import annotations

import argparse
import collections
import contextlib
import fcntl
import hashlib
import io
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import docker
import docker.errors
import requests.exceptions

from harness.runtime.docker import DockerError, engine_client

log = logging.getLogger(__name__)

REPOSITORY: Final = "memif-harness"
IMAGE_LABEL: Final = "memif-harness.image"
"""Label naming what an image is (debian-base, testpmd)."""
RECIPE_LABEL: Final = "memif-harness.recipe"
"""Label carrying the recipe hash (also the image's tag)."""
RECIPE_FORMAT: Final = 1
"""Part of every recipe hash: bump it when the build steps below change meaning."""
DEFAULT_SUITE: Final = "bookworm"
TESTPMD_PACKAGES: Final = ("dpdk-dev",)
BUILD_DIR: Final = Path("/var/tmp")
LOCK_FILE: Final = BUILD_DIR / "memif-harness-images.lock"
BUILD_TIMEOUT: Final = 1800.0
_LOG_TAIL_LINES: Final = 40

LAYER_DOCKERFILE: Final = """\
FROM {base}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {packages} \\
 && apt-get clean \\
 && rm -rf /var/lib/apt/lists/*
"""


class ImageBuildError(DockerError):
    """An image could not be built (the log tail says why)."""


# --------------------------------------------------------------------------- mirror


def _deb822_stanzas(text: str) -> Iterator[dict[str, str]]:
    stanza: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if stanza:
                yield stanza
            stanza, key = {}, ""
        elif line[0].isspace() and key:
            stanza[key] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            stanza[key] = value.strip()
    if stanza:
        yield stanza


def apt_sources(apt_dir: Path = Path("/etc/apt")) -> list[tuple[str, tuple[str, ...]]]:
    """Read the configured `deb` sources (one-line .list and deb822 .sources files).

    Args:
        apt_dir: APT's configuration directory.

    Returns:
        (URI, suites) pairs in APT's reading order.
    """
    sources: list[tuple[str, tuple[str, ...]]] = []
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.name.endswith(".list"):
            for line in text.splitlines():
                line = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0])
                fields = line.split()
                if len(fields) >= 3 and fields[0] == "deb":
                    sources.append((fields[1], (fields[2],)))
        elif path.name.endswith(".sources"):
            for stanza in _deb822_stanzas(text):
                if stanza.get("enabled", "yes").lower() == "no":
                    continue
                if "deb" not in stanza.get("types", "").split():
                    continue
                suites = tuple(stanza.get("suites", "").split())
                sources.extend((uri, suites) for uri in stanza.get("uris", "").split())
    return sources


def debian_mirror(suite: str = DEFAULT_SUITE, apt_dir: Path = Path("/etc/apt")) -> str:
    """The configured Debian mirror that serves `suite` (not the security archive).

    Args:
        suite: Debian suite, e.g. bookworm.
        apt_dir: APT's configuration directory.

    Returns:
        The mirror URI without a trailing slash, e.g. http://deb.debian.org/debian.

    Raises:
        ImageBuildError: No configured source serves the suite.
    """
    for uri, suites in apt_sources(apt_dir):
        if suite in suites and uri.startswith(("http://", "https://", "file:/")):
            return uri.rstrip("/")
    raise ImageBuildError(
        f"no APT source for suite {suite!r} in {apt_dir}/sources.list*: pass mirror= explicitly"
    )


# --------------------------------------------------------------------------- recipes


def _digest(recipe: dict[str, Any]) -> str:
    canonical = json.dumps({"format": RECIPE_FORMAT, **recipe}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class BaseImageRecipe:
    """A Debian root filesystem made by debootstrap and imported as an image.

    Attributes:
        mirror: Debian mirror URI.
        suite: Debian suite.
        variant: debootstrap --variant.
        components: Archive components.
        include: Extra packages for debootstrap --include.
        name: Image name under the memif-harness/ repository.
    """

    mirror: str
    suite: str = DEFAULT_SUITE
    variant: str = "minbase"
    components: tuple[str, ...] = ("main",)
    include: tuple[str, ...] = ()
    name: str = "debian-base"

    @property
    def digest(self) -> str:
        """Hash of the recipe (its tag)."""
        return _digest({"kind": "debootstrap", **asdict(self)})

    @property
    def tag(self) -> str:
        """memif-harness/<name>:<digest>."""
        return f"{REPOSITORY}/{self.name}:{self.digest}"

    def debootstrap_argv(self, debootstrap: str, root: Path) -> list[str]:
        """The debootstrap command line building the root filesystem in `root`."""
        argv = [
            debootstrap,
            f"--variant={self.variant}",
            f"--components={','.join(self.components)}",
        ]
        if self.include:
            argv.append(f"--include={','.join(self.include)}")
        return [*argv, self.suite, str(root), self.mirror]


@dataclass(frozen=True)
class LayerImageRecipe:
    """Debian packages installed on a base image by a Dockerfile.

    Attributes:
        name: Image name under the memif-harness/ repository.
        base: The base image's recipe (its tag is in the Dockerfile, so in this hash too).
        packages: Packages to apt-get install.
    """

    name: str
    base: BaseImageRecipe
    packages: tuple[str, ...]

    @property
    def dockerfile(self) -> str:
        """The Dockerfile text."""
        return LAYER_DOCKERFILE.format(base=self.base.tag, packages=" ".join(self.packages))

    @property
    def digest(self) -> str:
        """Hash of the recipe (its tag)."""
        return _digest(
            {
                "kind": "dockerfile",
                "name": self.name,
                "packages": list(self.packages),
                "dockerfile": self.dockerfile,
            }
        )

    @property
    def tag(self) -> str:
        """memif-harness/<name>:<digest>."""
        return f"{REPOSITORY}/{self.name}:{self.digest}"


def default_recipes(
    mirror: str | None = None, suite: str = DEFAULT_SUITE
) -> tuple[BaseImageRecipe, LayerImageRecipe]:
    """The base and testpmd recipes.

    Args:
        mirror: Debian mirror; the one APT is configured with if None.
        suite: Debian suite.

    Returns:
        (base recipe, testpmd recipe).
    """
    base = BaseImageRecipe(mirror=mirror or debian_mirror(suite), suite=suite)
    return base, LayerImageRecipe(name="testpmd", base=base, packages=TESTPMD_PACKAGES)


# --------------------------------------------------------------------------- builds


@dataclass(frozen=True)
class BuiltImage:
    """One image of build_images().

    Attributes:
        name: Image name (debian-base, testpmd).
        tag: Its full tag.
        built: True if built now, False if the cached image was used.
        seconds: Time spent on it (the check alone when cached).
    """

    name: str
    tag: str
    built: bool
    seconds: float


@dataclass(frozen=True)
class ImageSet:
    """The images of build_images().

    Attributes:
        base: The Debian base image.
        testpmd: base + dpdk-dev (dpdk-testpmd with net_memif).
    """

    base: BuiltImage
    testpmd: BuiltImage

    @property
    def tags(self) -> dict[str, str]:
        """Image name -> tag."""
        return {image.name: image.tag for image in (self.base, self.testpmd)}


def _image_id(client: docker.DockerClient, tag: str) -> str | None:
    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None
    return str(image.id) if image.id else None


def image_exists(client: docker.DockerClient, tag: str) -> bool:
    """Whether the engine has an image with this tag."""
    return _image_id(client, tag) is not None


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _file_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        return _tail(path.read_text(errors="replace"), lines)
    except OSError:
        return ""


@contextlib.contextmanager
def _build_lock(path: Path = LOCK_FILE) -> Iterator[None]:
    """Serialise builds of concurrent harness processes on this host."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_base_image(client: docker.DockerClient, recipe: BaseImageRecipe, timeout: float) -> None:
    """debootstrap the recipe's root filesystem, then import it as the base image.

    Args:
        client: Engine client.
        recipe: What to build.
        timeout: Seconds allowed for debootstrap.

    Raises:
        ImageBuildError: debootstrap is missing or failed, or the import failed.
    """
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise ImageBuildError("debootstrap is not installed: run ci/docker.sh (apt-get)")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(
        prefix="memif-harness-base-", dir=BUILD_DIR, ignore_cleanup_errors=True
    ) as scratch:
        root = Path(scratch) / "rootfs"
        output = Path(scratch) / "debootstrap.out"
        argv = recipe.debootstrap_argv(debootstrap, root)
        log.info("debootstrap: %s", " ".join(argv))
        with output.open("wb") as sink:
            try:
                result = subprocess.run(
                    argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                    timeout=timeout, check=False,
                )  # fmt: skip
            except subprocess.TimeoutExpired as error:
                raise ImageBuildError(
                    f"debootstrap did not finish within {timeout:.0f}s", _file_tail(output)
                ) from error
        if result.returncode != 0:
            detail = _file_tail(root / "debootstrap" / "debootstrap.log", 20)
            raise ImageBuildError(
                f"debootstrap exited with status {result.returncode}: {' '.join(argv)}",
                _file_tail(output) + (f"\n--- debootstrap.log ---\n{detail}" if detail else ""),
            )
        for package in (root / "var/cache/apt/archives").glob("*.deb"):
            package.unlink()
        tarball = Path(scratch) / "rootfs.tar"
        tar = subprocess.run(
            ["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-cf", str(tarball), "."],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if tar.returncode != 0:
            raise ImageBuildError(f"tar of {root} failed", _tail(tar.stderr))
        repository, tag = recipe.tag.split(":")
        changes = [
            f"LABEL {IMAGE_LABEL}={recipe.name}",
            f"LABEL {RECIPE_LABEL}={recipe.digest}",
            'CMD ["/bin/bash"]',
        ]
        try:
            client.api.import_image(
                src=str(tarball), repository=repository, tag=tag, changes=changes
            )
        except docker.errors.APIError as error:
            raise ImageBuildError(f"docker import of {recipe.tag} failed: {error}") from error
    if not image_exists(client, recipe.tag):
        raise ImageBuildError(f"docker import reported success but {recipe.tag} does not exist")


def build_layer_image(client: docker.DockerClient, recipe: LayerImageRecipe) -> None:
    """Build a layer image from its Dockerfile (host network: the engine has no bridge).

    Args:
        client: Engine client (its timeout bounds the silence between build output lines).
        recipe: What to build.

    Raises:
        ImageBuildError: The build failed (with its output's tail).
    """
    output: collections.deque[str] = collections.deque(maxlen=200)
    labels = {IMAGE_LABEL: recipe.name, RECIPE_LABEL: recipe.digest}
    try:
        stream = client.api.build(
            fileobj=io.BytesIO(recipe.dockerfile.encode()),
            tag=recipe.tag,
            labels=labels,
            network_mode="host",
            pull=False,
            rm=True,
            forcerm=True,
            decode=True,
        )
        for chunk in stream:
            if "stream" in chunk:
                text = str(chunk["stream"])
                output.extend(text.splitlines())
                log.debug("build %s: %s", recipe.name, text.rstrip())
            if "error" in chunk:
                raise ImageBuildError(
                    f"build of {recipe.tag} failed: {chunk['error']}",
                    _tail("\n".join(output)),
                )
    except (docker.errors.APIError, requests.exceptions.RequestException) as error:
        raise ImageBuildError(
            f"build of {recipe.tag} failed: {error}", _tail("\n".join(output))
        ) from error
    if not image_exists(client, recipe.tag):
        raise ImageBuildError(f"build of {recipe.tag} left no image", _tail("\n".join(output)))


def build_images(
    force: bool = False,
    *,
    mirror: str | None = None,
    suite: str = DEFAULT_SUITE,
    client: docker.DockerClient | None = None,
    timeout: float = BUILD_TIMEOUT,
) -> ImageSet:
    """Build (or reuse) the base and testpmd images.

    An image whose recipe-hash tag exists is reused unless `force`. Concurrent callers on
    one host are serialised by a file lock.

    Args:
        force: Rebuild even if the tags exist.
        mirror: Debian mirror; the one APT is configured with if None.
        suite: Debian suite.
        client: Engine client; connects if None.
        timeout: Seconds allowed per build step (debootstrap; silence in a Dockerfile build).

    Returns:
        The images with their tags, whether each was built, and the time it took.

    Raises:
        EngineUnavailableError: No Docker engine answers (run ci/docker.sh).
        ImageBuildError: A build failed.
    """
    client = client or engine_client(timeout=timeout)
    base_recipe, testpmd_recipe = default_recipes(mirror, suite)
    results: list[BuiltImage] = []
    replaced: list[str] = []
    with _build_lock():
        for recipe in (base_recipe, testpmd_recipe):
            started = time.monotonic()
            old_id = _image_id(client, recipe.tag)
            cached = not force and old_id is not None
            if not cached:
                if old_id is not None:
                    replaced.append(old_id)
                log.info("building %s", recipe.tag)
                if isinstance(recipe, BaseImageRecipe):
                    build_base_image(client, recipe, timeout)
                else:
                    build_layer_image(client, recipe)
            seconds = time.monotonic() - started
            log.info("%s %s in %.1fs", "reused" if cached else "built", recipe.tag, seconds)
            results.append(BuiltImage(recipe.name, recipe.tag, not cached, seconds))
        for image_id in reversed(replaced):  # layers first: a parent goes once unused
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(image_id, noprune=False)
                log.info("removed replaced image %s", image_id)
    return ImageSet(base=results[0], testpmd=results[1])


def main(argv: list[str] | None = None) -> int:
    """`python -m harness.runtime.images [--force]`: build or reuse the images, print tags.

    Args:
        argv: Arguments (sys.argv[1:] if None).

    Returns:
        Exit status: 0 on success, 1 when the engine is missing or a build failed.
    """
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--force", action="store_true", help="rebuild even if the tags exist")
    parser.add_argument("--mirror", help="Debian mirror (default: the one APT uses)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[images] %(message)s")
    try:
        images = build_images(force=args.force, mirror=args.mirror)
    except DockerError as error:
        print(f"[images] error: {error}", file=sys.stderr)
        return 1
    for image in (images.base, images.testpmd):
        state = "built" if image.built else "cached"
        print(f"{image.tag}  {state} in {image.seconds:.1f}s")
    return 0


__all__ = [
    "IMAGE_LABEL",
    "RECIPE_LABEL",
    "REPOSITORY",
    "BaseImageRecipe",
    "BuiltImage",
    "ImageBuildError",
    "ImageSet",
    "LayerImageRecipe",
    "apt_sources",
    "build_base_image",
    "build_images",
    "build_layer_image",
    "debian_mirror",
    "default_recipes",
    "image_exists",
    "main",
]


if __name__ == "__main__":
    sys.exit(main())
