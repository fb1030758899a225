"""A generated corpus of hostile input over the front end and the tar writer: whatever the
input, the outcome is a UserError (one line: what, where, what to do) or a valid result,
never another exception, each input within a time bound (hypothesis's deadline).

``DOIT_OCI_FUZZ=long pytest tests/test_fuzz.py`` runs many more examples, by hand; CI runs
the short profile (about a minute in all). Inputs that found a bug are kept as regular
tests (tests/test_hostile.py and the ``@example``s below).
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from doit_oci.registry.layout import Layout
from doit_oci.registry.oci import Platform
from doit_oci.rules.context import ContextDir
from doit_oci.rules.copyplan import plan_copy
from doit_oci.rules.dockerfile.evaluate import evaluate
from doit_oci.rules.dockerfile.model import CopyStep
from doit_oci.rules.dockerfile.read import read_dockerfile
from doit_oci.rules.dockerfile.stages import select_chain
from doit_oci.rules.dockerignore import DockerIgnore, IgnoreError
from doit_oci.rules.errors import UserError
from doit_oci.rules.layer import write_layer
from doit_oci.rules.plan import load_plan
from doit_oci.rules.tree import DIR, FILE, SYMLINK, Entry, Tree

LONG = os.environ.get("DOIT_OCI_FUZZ") == "long"
settings.register_profile(
    "doit-oci",
    max_examples=3000 if LONG else 150,
    deadline=2000,  # milliseconds an input may take
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=not LONG,  # CI sees the same inputs every run
)
settings.load_profile("doit-oci")

AMD64 = Platform("linux", "amd64")

# the alphabet of each input: what its grammar cares about, and some of what it does not
WORDS = st.sampled_from(
    [
        "FROM",
        "COPY",
        "ADD",
        "ARG",
        "ENV",
        "WORKDIR",
        "USER",
        "LABEL",
        "EXPOSE",
        "VOLUME",
        "ENTRYPOINT",
        "CMD",
        "SHELL",
        "STOPSIGNAL",
        "MAINTAINER",
        "HEALTHCHECK",
        "ONBUILD",
        "scratch",
        "base",
        "AS",
        "--chown=1:1",
        "--chmod=755",
        "--from=x",
        "--platform=$P",
        "${A}",
        "$A",
        "${A:-x}",
        "${A:+y}",
        "${A?e}",
        "${",
        "}",
        "\\",
        "`",
        "'",
        '"',
        "[",
        "]",
        '["/a"]',
        "=",
        "A=1",
        "/",
        ".",
        "..",
        "*",
        "?",
        "a b",
        "#",
        "\t",
        "é",
        "\u2028",
        "# escape=`",
        "# syntax=x",
        "<<EOF",
        "80/tcp",
        "SIGTERM",
        "\r",
    ]
)
DOCKERFILE = st.lists(
    st.lists(WORDS | st.text(max_size=8), min_size=1, max_size=8).map(" ".join),
    max_size=12,
).map("\n".join)


@given(DOCKERFILE)
@example("FROM scratch\nENV A=aaaa\n" + "ENV A=${A}${A}\n" * 30)
@example("FROM scratch\nCOPY f /" + "x/" * 3000)
@example("FROM scratch\nCOPY a\x00b /x")
def test_the_dockerfile_front_end(text: str) -> None:
    try:
        dockerfile = read_dockerfile(text, "Dockerfile")
        chain = select_chain(dockerfile, {"A": "1"})
        evaluate(chain, {"A": "1"}, None)
    except UserError as exc:
        assert str(exc) and "\n" not in str(exc)


YAML = st.lists(
    st.sampled_from(
        [
            "images:",
            "- name: a",
            "  dockerfile: D",
            "  files: [x]",
            "  targets: [${T}]",
            "  base: true",
            "  platforms: [linux/arm64]",
            "  args: {A: 1}",
            "args:",
            "protectedHubs: [h]",
            "- ",
            "  - ",
            "[",
            "]",
            "{",
            "}",
            "&a",
            "*a",
            "!!python/x",
            ": ",
            '"',
            "'",
            "\\0",
            '"\\0"',
            "?",
            "|",
            ">",
            "---",
            "...",
            "\t",
            "%YAML 1.1",
            "images: [" * 30,
            "name: " + "x" * 300,
            "ignoreRuns: maybe",
        ]
    )
    | st.text(max_size=10),
    max_size=15,
).map("\n".join)


@given(YAML)
@example("images: " + "[" * 500 + "]" * 500)
def test_the_plan_loader(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "plans").mkdir()
        (root / "plans/x.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
        (root / "D").write_text("FROM scratch\n")
        try:
            load_plan("plans/x.yaml", AMD64, root, {"T": "t"})
        except UserError as exc:
            assert str(exc) and "\n" not in str(exc)
        except UnicodeEncodeError:
            pass  # (a lone surrogate cannot even be written to the file)


PATTERN = st.text(alphabet="*?[]^!\\/-ab.\n #", max_size=30)


@given(PATTERN, st.text(alphabet="ab/.-", max_size=60))
@example("*a" * 10 + "*b", "a" * 60)
def test_dockerignore(text: str, path: str) -> None:
    try:
        ignore = DockerIgnore.parse(text)
    except IgnoreError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert isinstance(ignore.excluded(path), bool)
    assert isinstance(ignore.may_include_under(path), bool)


NAMES = st.text(alphabet="ab/.", min_size=1, max_size=6)
TREE = st.lists(st.tuples(NAMES, st.sampled_from([DIR, FILE, SYMLINK]), NAMES), max_size=10).map(
    lambda items: Tree(
        Entry(p.strip("/") or "x", k, 0o755, link=t if k == SYMLINK else "") for p, k, t in items
    )
)


@given(TREE, st.text(alphabet="ab/.*", min_size=1, max_size=12), st.booleans())
@example(Tree([Entry("a", SYMLINK, 0o777, link="a")]), "/a/b", False)
def test_copy_onto_any_tree(lower: Tree, dest: str, is_dir: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "f").write_text("f\n")
        (root / "d").mkdir()
        (root / "d/g").write_text("g\n")
        for source in ("f", "d", "*"):
            step = CopyStep("Dockerfile:2", "COPY", (source,), "/" + dest, is_dir)
            try:
                entries = plan_copy(step, ContextDir(root, root), lower, root, _digest)
            except UserError as exc:
                assert str(exc) and "\n" not in str(exc)
                continue
            assert all(
                not e.path.startswith("/") and ".." not in e.path.split("/") for e in entries
            )


def _digest(path: Path | str, st_: object = None) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


TAR_NAMES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/"),
    min_size=1,
    max_size=40,
)


@given(
    st.lists(st.tuples(TAR_NAMES, st.binary(max_size=300)), max_size=6, unique_by=lambda x: x[0])
)
def test_the_tar_writer(files: list[tuple[str, bytes]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        entries = []
        for index, (name, data) in enumerate(files):
            source = root / f"src{index}"
            source.write_bytes(data)
            digest = _digest(source)
            entries.append(
                Entry(f"d/{name}", FILE, 0o644, size=len(data), digest=digest, source=f"src{index}")
            )
        if entries:
            entries.append(Entry("d", DIR, 0o755))
        layout = Layout(root / "oci")
        blob = write_layer(entries, root, layout, "none", 0)
        with tarfile.open(fileobj=io.BytesIO(layout.read(blob.descriptor.digest))) as tar:
            members = {m.name: m for m in tar.getmembers()}
            for name, data in files:
                member = members[f"d/{name}"]
                extracted = tar.extractfile(member)
                assert extracted is not None and extracted.read() == data
                assert (member.mtime, member.uid, member.uname) == (0, 0, "")
