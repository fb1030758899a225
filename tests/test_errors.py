"""Bad input: one clear line (what, where, what to do), a non-zero exit, no traceback,
and nothing half-written under out/."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import Run, doit


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def assert_one_line_error(run: Run, *fragments: str) -> str:
    assert run.code != 0, run.text
    assert "Traceback" not in run.text
    lines = [line for line in run.err.splitlines() if line.startswith(("ERROR:", "error:"))]
    assert not [line for line in run.err.splitlines() if line.startswith("ERROR:")], run.err
    assert len(lines) == 1, run.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def assert_nothing_half_written(workspace: Path) -> None:
    tmp = workspace / "out" / "tmp"
    assert not tmp.exists() or not any(tmp.iterdir())
    for path in (workspace / "out").rglob("*"):
        assert not path.name.startswith((".tmp-", "blob-")), path


PLAN_ERRORS = [
    ("images:\n- name: a\n  dockerfile: [x\n", "plans/images.yaml:3", "invalid YAML"),
    ("images:\n- name: a\n  dockerfil: x\n", "plans/images.yaml:3", "did you mean 'dockerfile'"),
    ("images:\n- name: [a]\n", "plans/images.yaml:2", "name must be a string"),
    (
        "images:\n- name: a\n  dockerfile: example/hello/Dockerfile\n  base: yes please\n",
        "plans/images.yaml:4",
        "true or false",
    ),
    (
        "images:\n- name: a\n  dockerfile: nope/Dockerfile\n",
        "plans/images.yaml:3",
        "'nope/Dockerfile' of image 'a' does not exist",
    ),
    (
        "images:\n- name: a\n  dockerfile: example/hello/Dockerfile\n  files: [nope.txt]\n",
        "plans/images.yaml:4",
        "file 'nope.txt' of image 'a' does not exist",
    ),
    (
        "images:\n- name: a\n  dockerfile: example/hello/Dockerfile\n"
        "- name: a\n  dockerfile: example/hello/Dockerfile\n",
        "plans/images.yaml:4",
        "used twice (first at plans/images.yaml:2)",
    ),
    (
        "images:\n- name: Bad Name\n  dockerfile: example/hello/Dockerfile\n",
        "plans/images.yaml:2",
        "invalid image name",
    ),
    ("imagez: []\n", "plans/images.yaml:1", "did you mean 'images'"),
]


@pytest.mark.parametrize(("plan", "where", "what"), PLAN_ERRORS)
def test_plan_errors_name_the_file_and_line(
    example: Path, plan: str, where: str, what: str
) -> None:
    (example / "plans" / "images.yaml").write_text(plan)
    run = doit(example, "build_images")
    assert_one_line_error(run, where, what)
    assert not (example / "out").exists()


def test_a_plan_that_does_not_exist(example: Path) -> None:
    run = doit(example, "build_images", "--plan", "plans/nope.yaml")
    assert_one_line_error(run, "plans/nope.yaml", "plan file not found", "--plan")


def test_an_unknown_target(example: Path) -> None:
    run = doit(example, "build_images", env={"DOCKER_TARGETS": "docker.hello docker.nope"})
    assert_one_line_error(run, "unknown target 'nope'", "hello, whoami, showconfig")


def test_a_base_cycle(example: Path) -> None:
    plan = example / "plans" / "images.yaml"
    (example / "a.Dockerfile").write_text("FROM b\nCOPY Makefile /\n")
    (example / "b.Dockerfile").write_text("FROM a\nCOPY Makefile /\n")
    plan.write_text(
        "images:\n- name: a\n  dockerfile: a.Dockerfile\n  files: [Makefile]\n"
        "- name: b\n  dockerfile: b.Dockerfile\n  files: [Makefile]\n"
    )
    run = doit(example, "build_images")
    assert_one_line_error(run, "base images form a cycle: a -> b -> a")


DOCKERFILE_ERRORS = [
    ("ENV GREETING", "RUN make hello", "RUN is not supported"),
    ("ARG TARGETARCH", "FETCH x", "unknown instruction 'FETCH'"),
    ("ARG TARGETARCH", "COPY --from=build /a /b", "COPY --from is not supported"),
    ("ARG TARGETARCH", "ADD https://example.com/x /x", "ADD of a URL"),
    ("ARG TARGETARCH", "COPY <<EOF /x", "heredocs"),
    ("ARG TARGETARCH", 'CMD ["a", 1]', "strings"),
]


@pytest.mark.parametrize(("anchor", "line", "what"), DOCKERFILE_ERRORS)
def test_dockerfile_errors_stop_before_any_work(
    example: Path, anchor: str, line: str, what: str
) -> None:
    dockerfile = example / "example" / "hello" / "Dockerfile"
    lines = dockerfile.read_text().splitlines()
    number = next(i for i, text in enumerate(lines, 1) if text.startswith(anchor))
    edit(dockerfile, anchor, f"{line}\n{anchor}")
    run = doit(example, "build_images")
    assert_one_line_error(run, f"example/hello/Dockerfile:{number}", what)
    assert not (example / "out").exists() or not (example / "out" / "oci").exists()


def test_a_base_that_is_not_in_the_plan(example: Path) -> None:
    dockerfile = example / "example" / "hello" / "Dockerfile"
    number = dockerfile.read_text().splitlines().index("FROM base AS debug") + 1
    edit(dockerfile, "FROM base AS debug", "FROM Elsewhere.io/No_pe AS debug")
    run = doit(example, "build_images")
    assert_one_line_error(
        run,
        f"example/hello/Dockerfile:{number}",
        "base image 'Elsewhere.io/No_pe' is neither scratch, an image of this plan, nor a valid"
        " image reference",
    )
    assert not (example / "out").exists()


def test_a_missing_copy_source_fails_its_translate_task(example: Path) -> None:
    edit(
        example / "example" / "whoami" / "Dockerfile",
        "COPY ${TARGETARCH:-amd64}/whoami",
        "COPY nothing-here.txt /etc/\nCOPY ${TARGETARCH:-amd64}/whoami",
    )
    run = doit(example, "build_images")
    line = assert_one_line_error(
        run, "example/whoami/Dockerfile:8", "COPY source 'nothing-here.txt' not found"
    )
    assert "the image has: Dockerfile, whoami" in line
    assert "translate:whoami" in run.executed
    assert not (example / "out" / "build" / "linux_amd64" / "whoami" / "image.json").exists()
    assert_nothing_half_written(example)


def test_a_failing_make_shows_its_output(example: Path) -> None:
    (example / "example" / "src" / "hello.c").write_text("this is not C\n")
    run = doit(example, "build_images")
    assert_one_line_error(run, "make failed with exit code 2 for linux/amd64")
    assert "hello.c" in run.err and "error" in run.err
    assert not (example / "out" / "oci").exists()
    assert_nothing_half_written(example)


@pytest.mark.parametrize(
    ("args", "env", "what"),
    [
        (("--tag", "bad tag"), {}, "invalid tag 'bad tag'"),
        ((), {"HUB": "localhost:5000/Upper"}, "invalid hub"),
        (("--architectures", "linux"), {}, "platform 'linux' is not os/arch"),
        (("--compression", "brotli"), {}, "unknown compression 'brotli'"),
        (("--build-arg", "A=1"), {}, "write --build-arg=A=1"),
        (("--build-arg=1A=1",), {}, "invalid --build-arg"),
        ((), {"SOURCE_DATE_EPOCH": "yesterday"}, "SOURCE_DATE_EPOCH"),
    ],
)
def test_options_are_checked_before_any_work(
    example: Path, args: tuple[str, ...], env: dict[str, str], what: str
) -> None:
    run = doit(example, "build_images", *args, env=env)
    assert_one_line_error(run, what)
    assert not (example / "out").exists()
