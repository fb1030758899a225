"""A corpus of bad inputs: each gives one clear line (what; where as file:line or a
reference; what to do), a non-zero exit, no traceback, nothing half-written, and leaves the
registry as it was."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from registries import RunningRegistry
from support import Run, doit

Edit = Callable[[Path], None]


def replace_in(relative: str, old: str, new: str) -> Edit:
    def edit(workspace: Path) -> None:
        path = workspace / relative
        text = path.read_text()
        assert old in text, (relative, old)
        path.write_text(text.replace(old, new, 1))

    return edit


def write(relative: str, text: str) -> Edit:
    def edit(workspace: Path) -> None:
        (workspace / relative).parent.mkdir(parents=True, exist_ok=True)
        (workspace / relative).write_text(text)

    return edit


def both(*edits: Edit) -> Edit:
    def edit(workspace: Path) -> None:
        for one in edits:
            one(workspace)

    return edit


HELLO = "example/hello/Dockerfile"
WHOAMI = "example/whoami/Dockerfile"
PLAN = "plans/images.yaml"
COPY_LINE = "COPY ${TARGETARCH:-amd64}/hello /usr/local/bin/hello"


def before_copy(line: str) -> Edit:
    return replace_in(HELLO, COPY_LINE, f"{line}\n{COPY_LINE}")


def context_image(dockerfile: str, *files: tuple[str, str]) -> Edit:
    """An image 'ctx' with a context directory holding ``files`` (name, content)."""

    def edit(workspace: Path) -> None:
        context = workspace / "ctx"
        context.mkdir()
        (context / "Dockerfile").write_text(dockerfile)
        for name, content in files:
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            (context / name).write_text(content)
        plan = workspace / PLAN
        plan.write_text(plan.read_text() + "\n- name: ctx\n  context: ctx\n")

    return edit


@dataclass(frozen=True)
class Case:
    edit: Edit
    where: str  # a fragment of the location
    what: str  # a fragment of the message
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()


CASES: dict[str, Case] = {
    # the plan
    "malformed YAML": Case(
        write(PLAN, "images:\n- name: a\n  dockerfile: [x\n"), "plans/images.yaml:3", "invalid YAML"
    ),
    "name of a wrong type": Case(
        write(PLAN, "images:\n- name: [a]\n"), "plans/images.yaml:2", "name must be a string"
    ),
    "flag of a wrong type": Case(
        replace_in(PLAN, "  base: true\n", "  base: maybe\n"),
        "plans/images.yaml:",
        "must be true or false",
    ),
    "files not a list": Case(
        replace_in(
            PLAN,
            "  files:\n  - example/showconfig/config.json\n",
            "  files: example/showconfig/config.json\n",
        ),
        "plans/images.yaml:",
        "must be a list",
    ),
    "unknown image key": Case(
        replace_in(
            PLAN,
            "  dockerfile: example/whoami/Dockerfile",
            "  dockerfil: example/whoami/Dockerfile",
        ),
        "plans/images.yaml:",
        "did you mean 'dockerfile'",
    ),
    "unknown plan key": Case(
        replace_in(PLAN, "images:\n", "imagez: []\nimages:\n"),
        "plans/images.yaml:",
        "unknown key 'imagez' in the plan",
    ),
    "image without a name": Case(
        replace_in(PLAN, "- name: hello\n", "- nme: hello\n"),
        "plans/images.yaml:",
        "unknown key 'nme'",
    ),
    "duplicate image names": Case(
        replace_in(PLAN, "- name: whoami", "- name: hello"), "plans/images.yaml:", "is used twice"
    ),
    "invalid image name": Case(
        replace_in(PLAN, "- name: whoami", "- name: Who Am I"),
        "plans/images.yaml:",
        "invalid image name",
    ),
    "unknown target": Case(
        lambda ws: None,
        "plans/images.yaml",
        "unknown target 'nope'",
        env=(("DOCKER_TARGETS", "hello nope"),),
    ),
    "base images in a cycle": Case(
        replace_in("example/base/Dockerfile.base", "\nFROM scratch\n", "\nFROM hello\n"),
        "",
        "base images form a cycle",
    ),
    "missing Dockerfile": Case(
        replace_in(PLAN, "example/whoami/Dockerfile", "example/whoami/Dockerfile.gone"),
        "plans/images.yaml:",
        "does not exist",
    ),
    "missing file": Case(
        replace_in(PLAN, "example/showconfig/config.json", "example/showconfig/gone.json"),
        "plans/images.yaml:",
        "file 'example/showconfig/gone.json'",
    ),
    "context and files both": Case(
        replace_in(PLAN, "- name: showconfig\n", "- name: showconfig\n  context: example\n"),
        "plans/images.yaml:",
        "has both 'context' and 'files'",
    ),
    "missing context": Case(
        write(PLAN, "images:\n- name: a\n  context: nowhere\n"),
        "plans/images.yaml:3",
        "context directory 'nowhere'",
    ),
    "bad platform in the plan": Case(
        replace_in(PLAN, "- name: hello\n", "- name: hello\n  platforms: [linux]\n"),
        "plans/images.yaml:",
        "is not os/arch",
    ),
    "empty plan": Case(write(PLAN, ""), "plans/images.yaml", "the plan is empty"),
    # Dockerfiles
    "unknown instruction": Case(
        before_copy("FETCH x"), "example/hello/Dockerfile:", "unknown instruction 'FETCH'"
    ),
    "RUN without the opt-in": Case(
        before_copy("RUN make"), "example/hello/Dockerfile:", "RUN is not supported"
    ),
    "COPY --from a stage": Case(
        before_copy("COPY --from=debug /etc /x"),
        "example/hello/Dockerfile:",
        "COPY --from is not supported",
    ),
    "ADD of a URL": Case(
        before_copy("ADD https://example.com/x /x"), "example/hello/Dockerfile:", "ADD of a URL"
    ),
    "heredoc": Case(before_copy("COPY <<EOF /x"), "example/hello/Dockerfile:", "heredocs"),
    "not a JSON array of strings": Case(
        before_copy('CMD ["a", 1]'), "example/hello/Dockerfile:", "strings"
    ),
    "no FROM": Case(write(HELLO, "ENV A=1\n"), "example/hello/Dockerfile:1", "before the first"),
    "FROM with a bad alias": Case(
        replace_in(HELLO, "FROM base AS debug", "FROM base debug"),
        "example/hello/Dockerfile:",
        "FROM needs an image",
    ),
    "bad escape directive": Case(
        write(HELLO, "# escape=x\nFROM scratch\n"),
        "example/hello/Dockerfile:1",
        "invalid escape directive",
    ),
    "ENV without a value": Case(before_copy("ENV LONELY"), "example/hello/Dockerfile:", "ENV"),
    "COPY with one argument": Case(
        before_copy("COPY onlyone"),
        "example/hello/Dockerfile:",
        "at least one source and a destination",
    ),
    "unknown COPY flag": Case(
        before_copy("COPY --parents a /b/"),
        "example/hello/Dockerfile:",
        "--parents is not supported",
    ),
    "invalid base reference": Case(
        replace_in(HELLO, "FROM base AS debug", "FROM Base:1 AS debug"),
        "example/hello/Dockerfile:",
        "valid image reference",
    ),
    "invalid base digest": Case(
        replace_in(HELLO, "FROM base AS debug", "FROM reg.io/base@sha256:1234 AS debug"),
        "example/hello/Dockerfile:",
        "invalid digest",
    ),
    "bad --chmod": Case(
        replace_in(HELLO, COPY_LINE, "COPY --chmod=rwx ${TARGETARCH:-amd64}/hello /usr/local/bin/"),
        "example/hello/Dockerfile:",
        "--chmod",
    ),
    # COPY sources
    "missing COPY source": Case(
        before_copy("COPY nothing.txt /etc/"),
        "example/hello/Dockerfile:",
        "COPY source 'nothing.txt' not found",
    ),
    "wildcard matching nothing": Case(
        before_copy("COPY *.nothing /etc/"), "example/hello/Dockerfile:", "match no file"
    ),
    "ambiguous source": Case(
        both(
            write("other/config.json", "{}\n"),
            replace_in(
                PLAN,
                "  - example/showconfig/config.json\n",
                "  - example/showconfig/config.json\n  - other/config.json\n",
            ),
        ),
        "example/showconfig/Dockerfile:",
        "ambiguous",
    ),
    "source outside the context": Case(
        context_image("FROM base\nCOPY ../etc /x\n"),
        "ctx/Dockerfile:2",
        "outside the build context",
    ),
    "absolute source": Case(
        context_image("FROM base\nCOPY /etc/passwd /x\n"), "ctx/Dockerfile:2", "absolute path"
    ),
    "symlink out of the context": Case(
        both(
            context_image("FROM base\nCOPY link /x\n"),
            lambda ws: os.symlink("/etc/passwd", ws / "ctx" / "link"),
        ),
        "ctx/Dockerfile:2",
        "outside the context",
    ),
    "unknown --chown user": Case(
        before_copy("COPY --chown=nobody-here ${TARGETARCH:-amd64}/hello /x"),
        "example/hello/Dockerfile:",
        "no user 'nobody-here'",
    ),
    "a FIFO in the context": Case(
        both(
            context_image("FROM base\nCOPY . /srv/\n", ("a.txt", "a\n")),
            lambda ws: os.mkfifo(ws / "ctx" / "pipe"),
        ),
        "ctx/Dockerfile:2",
        "special file",
    ),
    # options
    "invalid tag": Case(lambda ws: None, "options", "invalid tag 'no tag'", ("--tag", "no tag")),
    "invalid hub": Case(lambda ws: None, "options", "invalid hub", ("--hub", "reg.io/UPPER")),
    "invalid platform option": Case(
        lambda ws: None, "options", "is not os/arch", ("--architectures", "amd64")
    ),
    "invalid build arg": Case(
        lambda ws: None, "command line", "invalid --build-arg", ("--build-arg=-x=1",)
    ),
    "push without a hub": Case(lambda ws: None, "options", "--push needs a registry", ("--push",)),
    "push and save": Case(
        lambda ws: None,
        "options",
        "mutually exclusive",
        ("--push", "--save", "--hub", "127.0.0.1:1/x"),
    ),
    "invalid cache repository": Case(
        lambda ws: None, "options", "invalid layer cache repository", ("--cache-repo", "nohost")
    ),
    # make
    "a make target that fails": Case(
        write("example/src/hello.c", "not C\n"), "", "make failed with exit code 2"
    ),
}


def assert_clear_failure(run: Run, workspace: Path, case: Case) -> str:
    assert run.code != 0, run.text
    assert "Traceback" not in run.text, run.text
    lines = [line for line in run.err.splitlines() if line.startswith(("ERROR:", "error:"))]
    assert not [line for line in run.err.splitlines() if line.startswith("ERROR:")], run.err
    assert len(lines) == 1, run.err
    line = lines[0]
    assert case.where in line and case.what in line, line
    assert "; " in line, line  # and what to do about it
    tmp = workspace / "out" / "tmp"
    assert not tmp.exists() or not list(tmp.iterdir())  # nothing half-written
    for path in (workspace / "out").rglob("*") if (workspace / "out").exists() else ():
        assert not path.name.startswith((".tmp-", "blob-")), path
    return line


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name: str, example: Path) -> None:
    case = CASES[name]
    case.edit(example)
    run = doit(example, "build_images", *case.args, env=dict(case.env))
    assert_clear_failure(run, example, case)


# -- the registry's answers: the registry is left as it was --------------------------------


def unchanged(registry: RunningRegistry, before: int) -> None:
    writes = [
        e
        for e in registry.access_log()[before:]
        if e.method in ("PUT", "POST", "PATCH") and e.status < 400
    ]
    assert writes == []


def test_an_unreachable_registry(example: Path) -> None:
    # found by the one request made to each registry before the first push to it
    case = Case(lambda ws: None, "127.0.0.1:1: log in failed", "cannot reach http://127.0.0.1:1")
    run = doit(
        example, "build_images", "--push", "--hub", "127.0.0.1:1/x", env={"REGISTRY_DEADLINE": "2"}
    )
    assert_clear_failure(run, example, case)


def test_401_from_the_registry(example: Path, tmp_path: Path) -> None:
    from registries import basic_registry

    with basic_registry(tmp_path / "basic") as registry:
        before = len(registry.access_log())
        run = doit(
            example,
            "build_images",
            "--push",
            "--hub",
            f"{registry.host}/x",
            "--targets",
            "hello",
            env={"DOCKER_CONFIG": str(tmp_path / "none")},
        )
        assert_clear_failure(
            run, example, Case(lambda ws: None, f"{registry.host}: log in failed", "HTTP 401")
        )
        unchanged(registry, before)


def test_403_from_the_registry(example: Path, tmp_path: Path) -> None:
    import base64
    import json

    from registries import token_registry

    with token_registry(tmp_path / "token", actions=frozenset({"pull"})) as registry:
        config = tmp_path / "docker" / "config.json"
        config.parent.mkdir()
        secret = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
        config.write_text(json.dumps({"auths": {registry.host: {"auth": secret}}}))
        config.chmod(0o600)
        before = len(registry.access_log())
        run = doit(
            example,
            "build_images",
            "--push",
            "--hub",
            f"{registry.host}/x",
            "--targets",
            "hello",
            env={"DOCKER_CONFIG": str(config.parent)},
        )
        line = assert_clear_failure(
            run, example, Case(lambda ws: None, f"{registry.host}/x/hello", "HTTP 40")
        )
        assert "HTTP 401" in line or "HTTP 403" in line
        unchanged(registry, before)


def test_404_for_a_registry_base(example: Path, registry: RunningRegistry) -> None:
    case = Case(
        replace_in(HELLO, "FROM base AS debug", f"FROM {registry.host}/library/gone:1.0 AS debug"),
        f"{registry.host}/library/gone",
        "HTTP 404 MANIFEST_UNKNOWN",
    )
    case.edit(example)
    run = doit(example, "build_images", "--targets", "hello")
    assert_clear_failure(run, example, case)


def test_500_that_never_stops(example: Path, tmp_path: Path) -> None:
    from faults import Fault, fault_proxy
    from registries import open_registry

    with open_registry(tmp_path / "reg") as registry, fault_proxy(registry.host) as proxy:
        proxy.add(Fault("status", status=500, times=10_000))
        run = doit(
            example,
            "build_images",
            "--push",
            "--hub",
            f"{proxy.host}/x",
            "--targets",
            "hello",
            env={"INSECURE_REGISTRIES": proxy.host, "REGISTRY_DEADLINE": "2"},
        )
        assert_clear_failure(
            run, example, Case(lambda ws: None, f"{proxy.host}: log in failed", "HTTP 500")
        )
        assert registry.access_log() == [] or all(
            e.method in ("GET", "HEAD") for e in registry.access_log()
        )
