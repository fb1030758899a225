"""The benchmark's files and the workspaces every tool builds them in.

A workload is a base image (``/etc/passwd`` and ``/etc/group``) and six app images whose
binaries are shaped like Istio's (80, 60, 40, 30, 20 and 10 parts of 240), scaled to a
total size, in one of two flavours:

- ``random``: incompressible bytes from ``os.urandom``;
- ``real``: the machine's own ELF binaries and libraries (``/usr/bin``, ``/usr/sbin``,
  ``/usr/libexec``, ``/usr/lib``, walked in sorted order), concatenated and cut to size, so
  that they compress as real programs do (about 2.4x with gzip). The same machine gives the
  same bytes on every run; the apps take consecutive, disjoint stretches of that stream.

Every tool is given the same files: the workspaces hold hard links to them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MiB = 1 << 20
SHAPE = (80, 60, 40, 30, 20, 10)  # parts of 240: the six apps
FLAVOURS = ("random", "real")
REAL_ROOTS = ("/usr/bin", "/usr/sbin", "/usr/libexec", "/usr/lib")
PASSWD = "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534::/:/sbin/nologin\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"


@dataclass
class Workload:
    flavour: str
    total_mb: int
    root: Path  # holds app0..app5 and etc/
    sizes: list[int] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.flavour}-{self.total_mb}"

    @property
    def label(self) -> str:
        kind = "incompressible" if self.flavour == "random" else "real binaries"
        return f"{self.total_mb} MB, {kind}"

    @property
    def files(self) -> list[Path]:
        return [self.root / f"app{index}" for index in range(len(SHAPE))]

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes)


def app_sizes(total_mb: int) -> list[int]:
    """The six binaries' sizes in bytes for a total of ``total_mb`` MiB."""
    return [total_mb * part * MiB // sum(SHAPE) for part in SHAPE]


def real_sources() -> list[Path]:
    """The machine's ELF files, in a fixed order: the stream the real flavour is cut from."""
    found: list[Path] = []
    for top in REAL_ROOTS:
        for directory, subdirs, names in os.walk(top):
            subdirs.sort()
            for name in sorted(names):
                path = Path(directory) / name
                try:
                    if path.is_symlink() or not path.is_file() or path.stat().st_size < 4096:
                        continue
                    with open(path, "rb") as handle:
                        if handle.read(4) != b"\x7fELF":
                            continue
                except OSError:
                    continue
                found.append(path)
    if not found:
        raise RuntimeError("no ELF files found under " + ", ".join(REAL_ROOTS))
    return found


def _real_stream() -> Iterator[bytes]:
    """The real flavour's endless stream of bytes (the sources again when they run out)."""
    sources = real_sources()
    while True:
        for path in sources:
            try:
                with open(path, "rb") as handle:
                    while chunk := handle.read(MiB):
                        yield chunk
            except OSError:
                continue


def _write_random(path: Path, size: int) -> None:
    with open(path, "wb") as out:
        left = size
        while left:
            count = min(left, 4 * MiB)
            out.write(os.urandom(count))
            left -= count


def _write_real(path: Path, size: int, stream: Iterator[bytes], spare: bytearray) -> None:
    with open(path, "wb") as out:
        left = size
        while left:
            if not spare:
                spare += next(stream)
            count = min(left, len(spare))
            out.write(spare[:count])
            del spare[:count]
            left -= count


def _write_etc(etc: Path) -> None:
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "passwd").write_text(PASSWD)
    (etc / "group").write_text(GROUP)


def make_workload(scratch: Path, flavour: str, total_mb: int) -> Workload:
    """Write (once) the files of a workload under ``scratch``."""
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown flavour {flavour!r}")
    workload = Workload(flavour, total_mb, scratch / "data" / f"{flavour}-{total_mb}")
    workload.sizes = app_sizes(total_mb)
    done = workload.root / ".done"
    if done.exists():
        return workload
    if workload.root.exists():
        shutil.rmtree(workload.root)
    workload.root.mkdir(parents=True)
    _write_etc(workload.etc)
    stream = _real_stream() if flavour == "real" else None
    spare = bytearray()
    for path, size in zip(workload.files, workload.sizes, strict=True):
        if stream is None:
            _write_random(path, size)
        else:
            _write_real(path, size, stream, spare)
    done.write_text("")
    return workload


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(4 * MiB):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def change_file(path: Path, seed: int) -> None:
    """Give ``path`` other contents of the same size, as a rebuilt binary would have: a copy
    with 4 KiB in its middle replaced, renamed over it (which breaks any hard link)."""
    size = path.stat().st_size
    temp = path.with_name(path.name + ".new")
    shutil.copyfile(path, temp)
    with open(temp, "r+b") as handle:
        handle.seek(max(0, size // 2 - 2048))
        handle.write(hashlib.sha256(f"change {seed}".encode()).digest() * 128)
    os.replace(temp, path)


# --- workspaces -----------------------------------------------------------------------


def dockerfile(index: int) -> str:
    name = f"app{index}"
    return f'FROM base\nCOPY {name} /usr/local/bin/{name}\nENTRYPOINT ["/usr/local/bin/{name}"]\n'


BASE_DOCKERFILE = "FROM scratch\nCOPY etc /etc/\n"


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copy2(source, target)


def doit_workspace(target: Path, workload: Workload) -> Path:
    """A doit-oci workspace: this repository's dodo.py and a plan of the base and six apps."""
    target.mkdir(parents=True)
    shutil.copy2(REPO / "dodo.py", target / "dodo.py")
    shutil.copytree(workload.etc, target / "etc")
    (target / "bin").mkdir()
    (target / "plans").mkdir()
    (target / "base.Dockerfile").write_text(BASE_DOCKERFILE)
    lines = [
        "images:",
        "- name: base",
        "  dockerfile: base.Dockerfile",
        "  files: [etc]",
        "  base: true",
    ]
    for index, source in enumerate(workload.files):
        _link(source, target / "bin" / source.name)
        (target / f"app{index}.Dockerfile").write_text(dockerfile(index))
        lines += [
            f"- name: app{index}",
            f"  dockerfile: app{index}.Dockerfile",
            f"  files: [bin/app{index}]",
        ]
    (target / "plans" / "images.yaml").write_text("\n".join(lines) + "\n")
    return target


def many_images_workspace(target: Path, count: int, size: int) -> Path:
    """A doit-oci workspace whose plan has a base and ``count`` small images."""
    target.mkdir(parents=True)
    shutil.copy2(REPO / "dodo.py", target / "dodo.py")
    _write_etc(target / "etc")
    (target / "bin").mkdir()
    (target / "docker").mkdir()
    (target / "plans").mkdir()
    (target / "base.Dockerfile").write_text(BASE_DOCKERFILE)
    lines = [
        "images:",
        "- name: base",
        "  dockerfile: base.Dockerfile",
        "  files: [etc]",
        "  base: true",
    ]
    for index in range(count):
        name = f"img{index:03d}"
        _write_random(target / "bin" / name, size)
        (target / "docker" / f"{name}.Dockerfile").write_text(
            f'FROM base\nCOPY {name} /usr/local/bin/{name}\nENTRYPOINT ["/usr/local/bin/{name}"]\n'
        )
        lines += [
            f"- name: {name}",
            f"  dockerfile: docker/{name}.Dockerfile",
            f"  files: [bin/{name}]",
        ]
    (target / "plans" / "images.yaml").write_text("\n".join(lines) + "\n")
    return target


def big_layer_workspace(target: Path, size: int) -> Path:
    """A doit-oci workspace with one image of one file of ``size`` random bytes."""
    target.mkdir(parents=True)
    shutil.copy2(REPO / "dodo.py", target / "dodo.py")
    _write_etc(target / "etc")
    (target / "bin").mkdir()
    (target / "plans").mkdir()
    _write_random(target / "bin" / "app0", size)
    (target / "base.Dockerfile").write_text(BASE_DOCKERFILE)
    (target / "app0.Dockerfile").write_text(dockerfile(0))
    (target / "plans" / "images.yaml").write_text(
        "images:\n"
        "- name: base\n  dockerfile: base.Dockerfile\n  files: [etc]\n  base: true\n"
        "- name: app0\n  dockerfile: app0.Dockerfile\n  files: [bin/app0]\n"
    )
    return target


def buildah_contexts(target: Path, workload: Workload) -> list[tuple[str, Path]]:
    """One build context per image (base first), each holding only what its COPY takes."""
    contexts = []
    base = target / "base"
    base.mkdir(parents=True)
    shutil.copytree(workload.etc, base / "etc")
    (base / "Dockerfile").write_text(BASE_DOCKERFILE)
    contexts.append(("base", base))
    for index, source in enumerate(workload.files):
        context = target / f"app{index}"
        context.mkdir()
        _link(source, context / f"app{index}")
        (context / "Dockerfile").write_text(dockerfile(index))
        contexts.append((f"app{index}", context))
    return contexts
