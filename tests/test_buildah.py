"""The same Dockerfiles built by doit-oci and by Debian's buildah must give the same images.

Every folder of tests/buildah/ is a case: a ``Dockerfile``, its build context in
``context/`` and, optionally, a ``case.toml``::

    args = { NAME = "value" }        # build args, for both tools
    error = "what doit-oci says"     # doit-oci must refuse the Dockerfile (not built by buildah)
    line = 3                         # ... at this line of it
    [setup]                          # what git cannot hold, made in the context before building
    dirs = ["empty"]                 # empty directories
    symlinks = { "link" = "target" }
    hardlinks = { "second" = "first" }
    modes = { "file" = "0600" }      # every other file is 0644, every directory 0755
    owners = { "file" = "1234:1234" }
    tars = { "files.tar" = ["file.txt"] }

A case may build FROM another case by its name. doit-oci builds every case in one plan and
one run; buildah builds each case (after the cases it builds on) in storage of its own.
Then, for every case, the two images must have the same config (Entrypoint, Cmd, Env,
User, WorkingDir, Labels but buildah's io.buildah.version, ExposedPorts, Volumes,
StopSignal, os, architecture), the same number of layers holding the same paths, and the
same root filesystem once unpacked with umoci (every path's type, mode, owner, symlink
target, content and hard links; not timestamps). A difference is allowed only when
docs/buildah-differences.md lists it, with the evidence that buildah differs from Docker
there; an entry of that table that no longer differs fails too.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import tarfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import REPO, Run, doit

CORPUS = Path(__file__).resolve().parent / "buildah"
TABLE = REPO / "docs" / "buildah-differences.md"
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
CONFIG_FIELDS = (
    "Entrypoint",
    "Cmd",
    "Env",
    "User",
    "WorkingDir",
    "Labels",
    "ExposedPorts",
    "Volumes",
    "StopSignal",
)
BUILDAH_LABEL = "io.buildah.version"
BUILDAH_WORKERS = 16
_FROM = re.compile(r"^\s*from\s+(?:--\S+\s+)*(\S+)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Case:
    name: str
    folder: Path
    args: dict[str, str]
    error: str
    line: int
    setup: dict[str, Any]

    @property
    def dockerfile(self) -> Path:
        return self.folder / "Dockerfile"

    def bases(self, names: set[str]) -> list[str]:
        """The cases this one builds FROM, by name."""
        text = self.dockerfile.read_text()
        return [m for m in dict.fromkeys(_FROM.findall(text)) if m in names and m != self.name]


def load_cases() -> dict[str, Case]:
    cases = {}
    for folder in sorted(p for p in CORPUS.iterdir() if p.is_dir()):
        toml = folder / "case.toml"
        data = tomllib.loads(toml.read_text()) if toml.exists() else {}
        cases[folder.name] = Case(
            name=folder.name,
            folder=folder,
            args={str(k): str(v) for k, v in data.get("args", {}).items()},
            error=str(data.get("error", "")),
            line=int(data.get("line", 0)),
            setup=dict(data.get("setup", {})),
        )
    return cases


CASES = load_cases()
BUILT = sorted(name for name, case in CASES.items() if not case.error)
REFUSED = sorted(name for name, case in CASES.items() if case.error)


def prepare(case: Case, target: Path) -> None:
    """``target``/Dockerfile and ``target``/context: the case with fixed modes and its setup."""
    target.mkdir(parents=True)
    shutil.copy(case.dockerfile, target / "Dockerfile")
    context = target / "context"
    if (case.folder / "context").is_dir():
        shutil.copytree(case.folder / "context", context, symlinks=True)
    else:
        context.mkdir()
    for path in [context, *context.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    setup = case.setup
    for rel in setup.get("dirs", []):
        (context / rel).mkdir(parents=True, exist_ok=True)
    for rel, link in setup.get("symlinks", {}).items():
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        (context / rel).symlink_to(link)
    for rel, existing in setup.get("hardlinks", {}).items():
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        os.link(context / existing, context / rel)
    for rel, members in setup.get("tars", {}).items():
        with tarfile.open(context / rel, "w") as tar:
            for member in members:
                tar.add(context / member, arcname=member)
    for rel, mode in setup.get("modes", {}).items():
        (context / rel).chmod(int(mode, 8))
    for rel, owner in setup.get("owners", {}).items():
        uid, _, gid = owner.partition(":")
        os.lchown(context / rel, int(uid), int(gid))


# -- building ----------------------------------------------------------------------------


def build_with_doit(workspace: Path, names: list[str]) -> Run:
    """Every case of ``names`` in one plan, built by one doit run."""
    images = []
    for name in names:
        image: dict[str, Any] = {
            "name": name,
            "dockerfile": f"cases/{name}/Dockerfile",
            "context": f"cases/{name}/context",
        }
        if CASES[name].args:
            image["args"] = CASES[name].args
        images.append(image)
    (workspace / "plans").mkdir(exist_ok=True)
    (workspace / "plans" / "images.yaml").write_text(json.dumps({"images": images}, indent=1))
    shutil.copy(REPO / "dodo.py", workspace / "dodo.py")
    return doit(
        workspace,
        "build_images",
        "--architectures",
        f"linux/{ARCH}",
        env={"SKIP_MAKE": "true"},
        timeout=600,
    )


def _buildah(storage: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        "buildah",
        *args[:1],
        "--storage-driver",
        "vfs",
        "--root",
        str(storage / "root"),
        "--runroot",
        str(storage / "runroot"),
        *args[1:],
    ]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)


def build_with_buildah(
    name: str, cases: Path, storage: Path, bases: dict[str, concurrent.futures.Future[str]]
) -> str:
    """Build ``name`` in storage of its own, after pulling the cases it builds FROM from
    their own OCI layouts (each built once), and push it to the layout ``storage``/oci.
    Gives "" or what buildah said when it failed."""
    for base, future in bases.items():
        if future.result():
            return f"{base}, which {name} builds on, failed"
        pulled = _buildah(storage, "pull", "-q", f"oci:{storage.parent / base / 'oci'}:latest")
        if pulled.returncode:
            return f"buildah pull {base}: {pulled.stderr}"
        image = pulled.stdout.split()[-1]
        tagged = _buildah(storage, "tag", image, f"localhost/{base}")
        if tagged.returncode:
            return f"buildah tag {base}: {tagged.stderr}"
    args = [f"--build-arg={k}={v}" for k, v in CASES[name].args.items()]
    result = _buildah(
        storage,
        "build",
        "--layers",
        "--isolation",
        "chroot",
        "--pull=never",
        *args,
        "-f",
        str(cases / name / "Dockerfile"),
        "-t",
        f"localhost/{name}",
        str(cases / name / "context"),
    )
    if result.returncode:
        return f"buildah build {name}: {result.stdout}{result.stderr}"
    result = _buildah(storage, "push", f"localhost/{name}", f"oci:{storage / 'oci'}:latest")
    if result.returncode:
        return f"buildah push {name}: {result.stderr}"
    return ""


def build_all_with_buildah(
    pool: concurrent.futures.Executor, names: list[str], cases: Path, storage: Path
) -> dict[str, concurrent.futures.Future[str]]:
    """Every case of ``names``, each after the cases it builds on."""
    futures: dict[str, concurrent.futures.Future[str]] = {}

    def submit(name: str) -> concurrent.futures.Future[str]:
        if name not in futures:
            bases = {base: submit(base) for base in CASES[name].bases(set(CASES))}
            futures[name] = pool.submit(build_with_buildah, name, cases, storage / name, bases)
        return futures[name]

    for name in names:
        submit(name)
    return futures


# -- reading images ------------------------------------------------------------------------


@dataclass
class Image:
    config: dict[str, Any]
    layers: list[list[str]]
    rootfs: dict[str, str] = field(default_factory=dict)


def _blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


def _layer_paths(blob: Path) -> list[str]:
    with tarfile.open(blob, "r:*") as tar:
        names = {m.name.removeprefix("./").strip("/") for m in tar.getmembers()}
    return sorted(n for n in names if n and n != ".")


def read_image(layout: Path, ref: str, unpack_to: Path) -> Image:
    index = json.loads((layout / "index.json").read_text())
    [descriptor] = [
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref
    ]
    manifest = json.loads(_blob(layout, descriptor["digest"]).read_text())
    config = json.loads(_blob(layout, manifest["config"]["digest"]).read_text())
    layers = [_layer_paths(_blob(layout, layer["digest"])) for layer in manifest["layers"]]
    unpack_to.mkdir(parents=True)
    subprocess.run(
        ["umoci", "raw", "unpack", "--image", f"{layout}:{ref}", str(unpack_to / "rootfs")],
        capture_output=True,
        check=True,
    )
    return Image(config, layers, describe_tree(unpack_to / "rootfs"))


def describe_tree(root: Path) -> dict[str, str]:
    """Path -> "type mode uid:gid [-> target] [sha256] [linked with ...]", root as "/"."""
    inodes: dict[tuple[int, int], list[str]] = {}
    out: dict[str, str] = {}
    for path in [root, *sorted(root.rglob("*"))]:
        rel = "/" + path.relative_to(root).as_posix() if path != root else "/"
        st = path.lstat()
        mode = f"{stat.S_IMODE(st.st_mode):04o} {st.st_uid}:{st.st_gid}"
        if stat.S_ISDIR(st.st_mode):
            out[rel] = f"dir {mode}"
        elif stat.S_ISLNK(st.st_mode):
            out[rel] = f"symlink {mode} -> {os.readlink(path)}"
        elif stat.S_ISREG(st.st_mode):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            out[rel] = f"file {mode} {digest}"
            if st.st_nlink > 1:
                inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
        else:
            out[rel] = f"special {mode}"
    for group in inodes.values():
        for rel in group:
            others = [other for other in group if other != rel]
            if others:
                out[rel] += " linked with " + ", ".join(others)
    return out


# -- comparing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    case: str
    field: str
    ours: str
    theirs: str

    def row(self) -> str:
        """A row of the table in docs/buildah-differences.md, but for its evidence."""
        return f"| {self.case} | {self.field} | {code(self.ours)} | {code(self.theirs)} |"


def code(value: str) -> str:
    """``value`` as a Markdown code span in a table cell."""
    value = value.replace("|", "\\|")
    return f"`` {value} ``" if "`" in value else f"`{value}`"


def uncode(cell: str) -> str:
    return cell.strip().strip("`").strip().replace("\\|", "|")


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _config_field(config: dict[str, Any], name: str) -> Any:
    value = config.get("config", {}).get(name)
    if name == "Labels" and value:
        value = {k: v for k, v in value.items() if k != BUILDAH_LABEL}
    # Go's image-spec types omit empty values: an empty list or map is no value
    return value or None


def compare(name: str, ours: Image, theirs: Image) -> list[Difference]:
    out = []
    for key in ("os", "architecture"):
        mine_value, other_value = ours.config.get(key), theirs.config.get(key)
        if mine_value != other_value:
            out.append(Difference(name, key, _value(mine_value), _value(other_value)))
    for key in CONFIG_FIELDS:
        mine, other = _config_field(ours.config, key), _config_field(theirs.config, key)
        if mine != other:
            out.append(Difference(name, f"config.{key}", _value(mine), _value(other)))
    if len(ours.layers) != len(theirs.layers):
        out.append(Difference(name, "layers", _value(ours.layers), _value(theirs.layers)))
    else:
        for index, (mine_paths, other_paths) in enumerate(
            zip(ours.layers, theirs.layers, strict=True)
        ):
            if mine_paths != other_paths:
                only_mine = sorted(set(mine_paths) - set(other_paths))
                only_other = sorted(set(other_paths) - set(mine_paths))
                out.append(
                    Difference(name, f"layer {index} only", _value(only_mine), _value(only_other))
                )
    for path in sorted(set(ours.rootfs) | set(theirs.rootfs)):
        mine_entry = ours.rootfs.get(path, "missing")
        other_entry = theirs.rootfs.get(path, "missing")
        if mine_entry != other_entry:
            out.append(Difference(name, f"rootfs {path}", mine_entry, other_entry))
    return out


def read_table() -> dict[tuple[str, str], tuple[str, str, str]]:
    """(case, field) -> (doit-oci's value, buildah's value, evidence) from the docs table."""
    rows: dict[tuple[str, str], tuple[str, str, str]] = {}
    in_table = False
    for line in TABLE.read_text().splitlines():
        if line.startswith("| case | field |"):
            in_table = True
            continue
        if not in_table:
            continue
        if not line.startswith("|"):
            in_table = False
            continue
        if set(line) <= set("|-: "):
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        assert len(cells) == 5, f"{TABLE}: a row needs 5 cells: {line}"
        case, name, ours, theirs, evidence = cells
        assert (case, name) not in rows, f"{TABLE}: {case} {name} is listed twice"
        rows[(case, name)] = (uncode(ours), uncode(theirs), evidence)
    return rows


# -- the session: everything built once ----------------------------------------------------


@dataclass
class Corpus:
    differences: dict[str, list[Difference]]
    failures: dict[str, str]
    refused: dict[str, Run]
    timings: dict[str, float]


def _refuse(name: str, root: Path) -> Run:
    workspace = root / name
    prepare(CASES[name], workspace / "cases" / name)
    return build_with_doit(workspace, [name])


def build_corpus(top: Path) -> Corpus:
    """Build every case with both tools (side by side) and compare the images."""
    workspace = top / "doit"
    cases = workspace / "cases"
    for name in BUILT:
        prepare(CASES[name], cases / name)
    timings: dict[str, float] = {}
    started = time.monotonic()
    # buildah waits for the clock's next second after each layer it commits: many builds
    # side by side hide that
    with (
        concurrent.futures.ThreadPoolExecutor(1) as ours_pool,
        concurrent.futures.ThreadPoolExecutor(BUILDAH_WORKERS) as pool,
    ):

        def timed_doit() -> Run:
            begin = time.monotonic()
            run = build_with_doit(workspace, BUILT)
            timings["doit-oci, one run"] = time.monotonic() - begin
            return run

        ours = ours_pool.submit(timed_doit)
        theirs = build_all_with_buildah(pool, BUILT, cases, top / "buildah")
        refused = {name: pool.submit(_refuse, name, top / "refused") for name in REFUSED}
        run = ours.result()
        failures = {name: future.result() for name, future in theirs.items()}
        refused_runs = {name: future.result() for name, future in refused.items()}
    timings["builds, all"] = time.monotonic() - started
    assert run.code == 0, run.text
    begin = time.monotonic()
    differences: dict[str, list[Difference]] = {}
    unpacked = top / "unpacked"
    for name in BUILT:
        if failures[name]:
            continue
        mine = read_image(workspace / "out" / "oci", f"{name}:latest", unpacked / name / "ours")
        other = read_image(top / "buildah" / name / "oci", "latest", unpacked / name / "theirs")
        differences[name] = compare(name, mine, other)
    timings["reading and comparing"] = time.monotonic() - begin
    return Corpus(differences, failures, refused_runs, timings)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    if os.geteuid() != 0:
        pytest.skip("buildah runs as root here (storage with owners, chroot isolation)")
    for tool in ("buildah", "umoci"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (.ci/install --test installs it)")
    top = tmp_path_factory.mktemp("buildah")
    yield build_corpus(top)
    shutil.rmtree(top, ignore_errors=True)


def test_the_corpus_covers_enough_cases() -> None:
    assert len(BUILT) >= 60, BUILT
    assert len(REFUSED) >= 5, REFUSED
    for name in CASES:
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", name), f"{name}: name cases as images"


@pytest.mark.parametrize("name", BUILT)
def test_same_image_as_buildah(corpus: Corpus, name: str) -> None:
    assert not corpus.failures[name], corpus.failures[name]
    table = read_table()
    found = {(d.case, d.field): d for d in corpus.differences[name]}
    listed = {key: row for key, row in table.items() if key[0] == name}
    unexpected = [d.row() for key, d in found.items() if key not in listed]
    changed = [
        f"{d.row()} (the table says `{listed[key][0]}` / `{listed[key][1]}`)"
        for key, d in found.items()
        if key in listed and (d.ours, d.theirs) != listed[key][:2]
    ]
    gone = [f"{key[1]}: {row[0]} / {row[1]}" for key, row in listed.items() if key not in found]
    assert not unexpected, "doit-oci differs from buildah:\n" + "\n".join(unexpected)
    assert not changed, "a listed difference changed:\n" + "\n".join(changed)
    assert not gone, f"{TABLE.name} lists differences that are gone:\n" + "\n".join(gone)


def test_the_table_names_only_built_cases() -> None:
    for (case, name), (_, _, evidence) in read_table().items():
        assert case in BUILT, f"{TABLE.name}: no case {case!r}"
        assert evidence, f"{TABLE.name}: {case} {name} has no evidence"


@pytest.mark.parametrize("name", REFUSED)
def test_unsupported_instructions_are_refused(corpus: Corpus, name: str) -> None:
    run = corpus.refused[name]
    case = CASES[name]
    assert run.code != 0, run.text
    assert "Traceback" not in run.text, run.text
    lines = [line for line in run.err.splitlines() if line.startswith(("ERROR:", "error:"))]
    assert len(lines) == 1, run.err
    assert case.error in lines[0], lines[0]
    assert f"cases/{name}/Dockerfile:{case.line}:" in lines[0], lines[0]
