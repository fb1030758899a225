"""Tests of rules.options: doit command lines, environment fallbacks, checks."""

from __future__ import annotations

import pytest

from doit_oci.registry.oci import Platform
from doit_oci.rules.errors import UserError
from doit_oci.rules.flags import DEFAULT_PLAN, OPTIONS, HelpWanted, help_text, read_argv
from doit_oci.rules.options import Options, read_options

TASK = "build_images"
AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")


# -- read_argv: the words after the task's name ---------------------------------------------


@pytest.mark.parametrize(
    ("argv", "found"),
    [
        ([], {}),
        ([TASK], {}),
        ([TASK, "--plan", "plans/x.yaml"], {"plan": ["plans/x.yaml"]}),
        ([TASK, "--plan=plans/x.yaml"], {"plan": ["plans/x.yaml"]}),
        ([TASK, "--plan="], {"plan": [""]}),
        (["run", TASK, "--tag", "1.2"], {"tag": ["1.2"]}),
        # repeated options, both spellings
        (
            [TASK, "--build-arg=A=1", "--build-arg=B=x=y", "--build-arg=C="],
            {"build_arg": ["A=1", "B=x=y", "C="]},
        ),
        ([TASK, "--hub", "a", "--hub=b"], {"hub": ["a", "b"]}),
        (
            [TASK, "--targets", "pilot,proxyv2", "--architectures", "linux/arm64"],
            {"targets": ["pilot,proxyv2"], "architectures": ["linux/arm64"]},
        ),
        ([TASK, "--compression", "gzip"], {"compression": ["gzip"]}),
        # global doit options before the task are not ours
        (["-n", "4", "--verbosity", "2", TASK, "--tag", "t"], {"tag": ["t"]}),
        (["--plan", "global.yaml", TASK], {}),
        (["-f", "dodo.py", "run", TASK, "--plan", "p.yaml"], {"plan": ["p.yaml"]}),
        # options of other tasks are ignored; a second task name ends ours
        (["other", "--plan", "o.yaml", TASK, "--plan", "p.yaml"], {"plan": ["p.yaml"]}),
        ([TASK, "--plan", "p.yaml", "other", "--plan", "o.yaml"], {"plan": ["p.yaml"]}),
        ([TASK, "--tag", "1", "other", "--tag", "2", TASK, "--tag", "3"], {"tag": ["1", "3"]}),
        ([TASK, "other", "--tag", "2"], {}),
        # the task's name as an option value is a value
        ([TASK, "--plan", TASK, "--tag", "t"], {"plan": [TASK], "tag": ["t"]}),
        # options we do not know are skipped, flag-like or with '='
        # a flag takes no value
        ([TASK, "--push", "--tag", "t"], {"push": ["true"], "tag": ["t"]}),
        # NAME=VALUE words are doit variables: skipped, they do not end our options
        ([TASK, "DEBUG=1", "--tag", "t"], {"tag": ["t"]}),
        # a word that is neither an option nor a value ends them
        ([TASK, "--tag", "t", "-x", "--hub", "h"], {"tag": ["t"]}),
        # a prefix of the task's name is another task
        (["build", "--tag", "t"], {}),
        (["build_images:hello", "--tag", "t"], {}),
    ],
)
def test_read_argv(argv: list[str], found: dict[str, list[str]]) -> None:
    assert read_argv(argv, TASK) == found


def test_read_argv_other_task_name() -> None:
    argv = ["build_images", "--tag", "a", "ci_images", "--tag", "b"]
    assert read_argv(argv, "ci_images") == {"tag": ["b"]}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([TASK, "--plan"], "command line: option --plan needs a value; write --plan VALUE"),
        (
            [TASK, "--tag", "1", "--hub"],
            "command line: option --hub needs a value; write --hub VALUE",
        ),
        (
            [TASK, "--build-arg", "A=1"],
            "command line: --build-arg A=1 would be read by doit as a variable of its own;"
            " write --build-arg=A=1",
        ),
        (
            [TASK, "--annotation", "a.b=1"],
            "command line: --annotation a.b=1 would be read by doit as a variable of its own;"
            " write --annotation=a.b=1",
        ),
    ],
)
def test_read_argv_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UserError) as caught:
        read_argv(argv, TASK)
    assert str(caught.value) == message


def test_every_option_has_a_flag_and_help() -> None:
    assert [o.flag for o in OPTIONS] == [
        "plan",
        "hub",
        "tag",
        "targets",
        "architectures",
        "build-arg",
        "compression",
        "variants",
        "push",
        "cache-dir",
        "platform-tags",
        "cache-repo",
        "save",
        "no-clobber",
        "no-cache",
        "prune-tags",
        "remote",
        "qemu",
        "insecure-registry",
        "load",
        "load-runtime",
        "load-platform",
        "locked",
        "offline",
        "check",
        "progress",
        "annotation",
        "no-auto-annotations",
        "image-refs",
        "metadata-file",
        "sbom",
        "provenance",
        "sign-key",
    ]
    assert all(o.kind in ("str", "list", "bool") and o.help for o in OPTIONS)


# -- read_options: command line > environment > default --------------------------------------


def test_defaults() -> None:
    assert read_options([], {}) == Options(
        plan=DEFAULT_PLAN,
        hubs=(),
        tags=("latest",),
        targets=(),
        platforms=(AMD64,),
        build_args=(),
        compression="",
        skip_make=False,
        epoch=0,
    )
    assert read_options([], {}).layer_compression == "none"
    assert read_options([], {}, default_plan="plans/own.yaml").plan == "plans/own.yaml"


def _opts(argv: list[str], environ: dict[str, str], **kwargs: str) -> Options:
    return read_options([TASK, *argv], environ, **kwargs)


@pytest.mark.parametrize(
    ("argv", "environ", "field", "value"),
    [
        # plan
        (["--plan", "a.yaml"], {}, "plan", "a.yaml"),
        (["--plan=a.yaml", "--plan=b.yaml"], {}, "plan", "b.yaml"),
        ([], {"PLAN": "env.yaml"}, "plan", "env.yaml"),
        (["--plan", "cli.yaml"], {"PLAN": "env.yaml"}, "plan", "cli.yaml"),
        ([], {"PLAN": ""}, "plan", DEFAULT_PLAN),
        (["--plan="], {"PLAN": "env.yaml"}, "plan", DEFAULT_PLAN),
        # hubs
        ([], {"HUB": "localhost:5000"}, "hubs", ("localhost:5000",)),
        ([], {"HUB": "localhost:5000/istio/"}, "hubs", ("localhost:5000/istio",)),
        ([], {"HUBS": "gcr.io/a docker.io/b"}, "hubs", ("gcr.io/a", "docker.io/b")),
        ([], {"HUBS": "gcr.io/a", "HUB": "ignored.io"}, "hubs", ("gcr.io/a",)),
        ([], {"HUBS": "", "HUB": "h.io"}, "hubs", ("h.io",)),
        ([], {"HUB": ""}, "hubs", ()),
        # on the command line, lists are comma-separated, as the seed's flags
        (["--hub", "a.io,b.io", "--hub", "c.io"], {}, "hubs", ("a.io", "b.io", "c.io")),
        (["--hub", "cli.io"], {"HUBS": "x.io y.io", "HUB": "z.io"}, "hubs", ("cli.io",)),
        (["--hub", "a.io", "--hub", "a.io/"], {}, "hubs", ("a.io",)),
        # tags
        ([], {"TAG": "1.2"}, "tags", ("1.2",)),
        ([], {"TAG": ""}, "tags", ("latest",)),
        ([], {"TAGS": "1.2 latest"}, "tags", ("1.2", "latest")),
        ([], {"TAGS": "1.2", "TAG": "ignored"}, "tags", ("1.2",)),
        ([], {"TAGS": "", "TAG": "t"}, "tags", ("t",)),
        (["--tag", "a,b", "--tag", "c"], {"TAGS": "x"}, "tags", ("a", "b", "c")),
        (["--tag", "a", "--tag", "a"], {}, "tags", ("a",)),
        # targets: the seed's docker. prefix is stripped
        ([], {"DOCKER_TARGETS": "docker.pilot docker.proxyv2"}, "targets", ("pilot", "proxyv2")),
        ([], {"DOCKER_TARGETS": "pilot,app"}, "targets", ("pilot", "app")),
        ([], {"DOCKER_TARGETS": " docker.pilot  pilot docker. "}, "targets", ("pilot",)),
        ([], {"DOCKER_TARGETS": ""}, "targets", ()),
        (["--targets", "hello"], {"DOCKER_TARGETS": "docker.pilot"}, "targets", ("hello",)),
        (["--targets", "a", "--targets", "b,c"], {}, "targets", ("a", "b", "c")),
        # platforms
        ([], {"DOCKER_ARCHITECTURES": "linux/amd64,linux/arm64"}, "platforms", (AMD64, ARM64)),
        ([], {"DOCKER_ARCHITECTURES": "linux/arm64"}, "platforms", (ARM64,)),
        ([], {"DOCKER_ARCHITECTURES": ""}, "platforms", (AMD64,)),
        (
            [],
            {"DOCKER_ARCHITECTURES": "linux/arm64,linux/arm64, linux/amd64"},
            "platforms",
            (ARM64, AMD64),
        ),
        (
            ["--architectures", "linux/arm/v7"],
            {"DOCKER_ARCHITECTURES": "linux/arm64"},
            "platforms",
            (Platform("linux", "arm", "v7"),),
        ),
        # build args: command line only
        (
            ["--build-arg=A=1", "--build-arg=B="],
            {"A": "env"},
            "build_args",
            (("A", "1"), ("B", "")),
        ),
        (["--build-arg=_X=a=b"], {}, "build_args", (("_X", "a=b"),)),
        # compression
        ([], {"COMPRESSION": "gzip"}, "compression", "gzip"),
        ([], {"COMPRESSION": ""}, "compression", ""),
        (["--compression", "none"], {"COMPRESSION": "gzip"}, "compression", "none"),
        # SKIP_MAKE, as the seed reads it
        ([], {"SKIP_MAKE": "true"}, "skip_make", True),
        ([], {"SKIP_MAKE": "1"}, "skip_make", False),
        ([], {"SKIP_MAKE": ""}, "skip_make", False),
        # SOURCE_DATE_EPOCH
        ([], {"SOURCE_DATE_EPOCH": "1700000000"}, "epoch", 1700000000),
        ([], {"SOURCE_DATE_EPOCH": "0"}, "epoch", 0),
        ([], {"SOURCE_DATE_EPOCH": ""}, "epoch", 0),
        # annotations: command line only, in order, the value may hold "="
        (
            ["--annotation=a.b=1", "--annotation=c=x=y", "--annotation=e="],
            {},
            "annotations",
            (("a.b", "1"), ("c", "x=y"), ("e", "")),
        ),
        ([], {}, "auto_annotations", True),
        (["--no-auto-annotations"], {}, "auto_annotations", False),
        # release outputs
        (["--image-refs", "refs.txt"], {"IMAGE_REFS": "env.txt"}, "image_refs", "refs.txt"),
        ([], {"IMAGE_REFS": "env.txt"}, "image_refs", "env.txt"),
        (["--metadata-file=m.json"], {}, "metadata_file", "m.json"),
        ([], {"METADATA_FILE": "m.json"}, "metadata_file", "m.json"),
        (["--sbom"], {}, "sbom", True),
        ([], {"SBOM": "true"}, "sbom", True),
        ([], {"SBOM": "1"}, "sbom", False),
        (["--provenance"], {}, "provenance", True),
        ([], {"PROVENANCE": "true"}, "provenance", True),
        (["--sign-key", "k.pem"], {"SIGN_KEY": "other.pem"}, "sign_key", "k.pem"),
        ([], {"SIGN_KEY": "other.pem"}, "sign_key", "other.pem"),
    ],
)
def test_read_options(argv: list[str], environ: dict[str, str], field: str, value: object) -> None:
    assert getattr(_opts(argv, environ), field) == value


def test_options_of_another_task_fall_back_to_the_environment() -> None:
    options = read_options(
        ["other", "--tag", "cli", "--plan", "cli.yaml"], {"TAG": "env", "PLAN": "env.yaml"}
    )
    assert (options.tags, options.plan) == (("env",), "env.yaml")


def test_a_realistic_command_line() -> None:
    argv = [
        "-n",
        "4",
        TASK,
        "--plan",
        "tools/docker.yaml",
        "--hub=localhost:5000/istio",
        "--tag",
        "1.2,latest",
        "--architectures",
        "linux/amd64,linux/arm64",
        "--build-arg=BASE_DISTRIBUTION=distroless",
        "--build-arg=ISTIO_VERSION=1.2",
        "--compression",
        "gzip",
        "list",
        "--tag",
        "ignored",
    ]
    environ = {"HUB": "ignored.io", "TAG": "ignored", "SKIP_MAKE": "true", "SOURCE_DATE_EPOCH": "5"}
    assert read_options(argv, environ) == Options(
        plan="tools/docker.yaml",
        hubs=("localhost:5000/istio",),
        tags=("1.2", "latest"),
        targets=(),
        platforms=(AMD64, ARM64),
        build_args=(("BASE_DISTRIBUTION", "distroless"), ("ISTIO_VERSION", "1.2")),
        compression="gzip",
        skip_make=True,
        epoch=5,
    )


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (
            ["--tag", "-bad"],
            {},
            "options: invalid tag '-bad': a tag is 1 to 128 letters, digits, '_', '.' or '-',"
            " not starting with '.' or '-'; fix --hub/--tag (or HUB, HUBS, TAG, TAGS)",
        ),
        (
            [],
            {"TAG": "a:b"},
            "options: invalid tag 'a:b': a tag is 1 to 128 letters, digits, '_', '.' or '-',"
            " not starting with '.' or '-'; fix --hub/--tag (or HUB, HUBS, TAG, TAGS)",
        ),
        (
            ["--tag", "bad tag"],
            {},
            "options: invalid tag 'bad tag': a tag is 1 to 128 letters, digits, '_', '.' or '-',"
            " not starting with '.' or '-'; fix --hub/--tag (or HUB, HUBS, TAG, TAGS)",
        ),
        (
            ["--hub", "a.io b.io"],
            {},
            "options: invalid hub 'a.io b.io': 'a.io b.io' is not a registry host such as"
            " localhost:5000 or gcr.io; fix --hub/--tag (or HUB, HUBS, TAG, TAGS)",
        ),
        (["--tag", ","], {}, "options: no tag given; give --tag TAG or TAG=..."),
        ([], {"TAGS": "  "}, "options: no tag given; give --tag TAG or TAG=..."),
        (
            ["--hub", "Bad"],
            {},
            "options: invalid hub 'Bad': each '/'-separated part of the path 'Bad' is lowercase"
            " letters and digits, joined by '.', '_', '__' or '-';"
            " fix --hub/--tag (or HUB, HUBS, TAG, TAGS)",
        ),
        (
            [],
            {"HUB": "http://localhost:5000"},
            "options: invalid hub 'http://localhost:5000': write it without http://;"
            " fix --hub/--tag (or HUB, HUBS, TAG, TAGS)",
        ),
        (
            ["--architectures", "linux"],
            {},
            "options: platform 'linux' is not os/arch[/variant];"
            " write --architectures linux/amd64,linux/arm64",
        ),
        (
            [],
            {"DOCKER_ARCHITECTURES": "linux/amd64/v1/x"},
            "options: platform 'linux/amd64/v1/x' is not os/arch[/variant];"
            " write --architectures linux/amd64,linux/arm64",
        ),
        (
            ["--architectures", "linux/amd64 linux/arm64"],
            {},
            "options: platform 'linux/amd64 linux/arm64' is not os/arch[/variant];"
            " write --architectures linux/amd64,linux/arm64",
        ),
        (
            ["--architectures", ","],
            {},
            "options: no platform given; write --architectures linux/amd64,linux/arm64",
        ),
        (
            ["--build-arg=NOVALUE"],
            {},
            "command line: invalid --build-arg 'NOVALUE'; write --build-arg NAME=VALUE",
        ),
        (
            ["--build-arg=1A=x"],
            {},
            "command line: invalid --build-arg '1A=x'; write --build-arg NAME=VALUE",
        ),
        (
            ["--build-arg==x"],
            {},
            "command line: invalid --build-arg '=x'; write --build-arg NAME=VALUE",
        ),
        (
            ["--build-arg=A-B=x"],
            {},
            "command line: invalid --build-arg 'A-B=x'; write --build-arg NAME=VALUE",
        ),
        (
            ["--compression", "xz"],
            {},
            "options: unknown compression 'xz'; choose one of none, gzip, zstd",
        ),
        (
            [],
            {"COMPRESSION": "GZIP"},
            "options: unknown compression 'GZIP'; choose one of none, gzip, zstd",
        ),
        (
            [],
            {"SOURCE_DATE_EPOCH": "-1"},
            "environment: SOURCE_DATE_EPOCH='-1' is not a number of seconds;"
            " set it to an integer such as 0",
        ),
        (
            [],
            {"SOURCE_DATE_EPOCH": "1.5"},
            "environment: SOURCE_DATE_EPOCH='1.5' is not a number of seconds;"
            " set it to an integer such as 0",
        ),
        (
            [],
            {"SOURCE_DATE_EPOCH": "²"},
            "environment: SOURCE_DATE_EPOCH='²' is not a number of seconds;"
            " set it to an integer such as 0",
        ),
        (
            [],
            {"SOURCE_DATE_EPOCH": " 5"},
            "environment: SOURCE_DATE_EPOCH=' 5' is not a number of seconds;"
            " set it to an integer such as 0",
        ),
        (
            ["--annotation=novalue"],
            {},
            "command line: invalid --annotation 'novalue'; write --annotation=KEY=VALUE",
        ),
        (
            ["--annotation=a b=1"],
            {},
            "command line: invalid annotation key 'a b'; write --annotation=org.example.key=VALUE",
        ),
        (
            ["--annotation==1"],
            {},
            "command line: invalid annotation key ''; write --annotation=org.example.key=VALUE",
        ),
    ],
)
def test_read_options_errors(argv: list[str], environ: dict[str, str], message: str) -> None:
    with pytest.raises(UserError) as caught:
        _opts(argv, environ)
    assert str(caught.value) == message


def test_attaching_needs_a_push() -> None:
    assert not _opts(["--sbom", "--provenance", "--sign-key", "k"], {}).attaches
    assert _opts(["--push", "--hub", "h.io", "--sbom"], {}).attaches
    assert not _opts(["--push", "--hub", "h.io"], {}).attaches


def test_push_needs_a_hub_and_takes_insecure_registries() -> None:
    with pytest.raises(UserError, match="--push needs a registry to push to"):
        read_options([TASK, "--push"], {})
    options = read_options(
        [TASK, "--push", "--hub", "127.0.0.1:5000", "--insecure-registry", "a.io:5000,b.io"], {}
    )
    assert options.push and options.hubs == ("127.0.0.1:5000",)
    assert options.insecure == ("a.io:5000", "b.io")
    assert read_options([TASK], {"PUSH": "true", "HUB": "h.io"}).push
    assert read_options([TASK], {"INSECURE_REGISTRIES": "x.io y.io"}).insecure == ("x.io", "y.io")
    assert read_options([TASK], {"REGISTRY_DEADLINE": "2.5"}).registry_deadline == 2.5
    with pytest.raises(UserError, match="REGISTRY_DEADLINE='soon'"):
        read_options([TASK], {"REGISTRY_DEADLINE": "soon"})


@pytest.mark.parametrize(
    ("argv", "environ", "variants"),
    [
        ([TASK], {}, ("default",)),
        ([TASK, "--variants", "default,distroless"], {}, ("default", "distroless")),
        ([TASK], {"DOCKER_BUILD_VARIANTS": "distroless debug"}, ("distroless", "debug")),
        (
            [TASK],
            {"DOCKER_BUILD_VARIANTS": "distroless", "INCLUDE_UNTAGGED_DEFAULT": "true"},
            ("default", "distroless"),
        ),
        (
            [TASK],
            {"DOCKER_BUILD_VARIANTS": "debug", "INCLUDE_UNTAGGED_DEFAULT": "false"},
            ("debug",),
        ),
        ([TASK, "--variants", "debug"], {"DOCKER_BUILD_VARIANTS": "distroless"}, ("debug",)),
    ],
)
def test_variants(argv: list[str], environ: dict[str, str], variants: tuple[str, ...]) -> None:
    assert read_options(argv, environ).variants == variants


@pytest.mark.parametrize(
    ("argv", "environ", "qemu"),
    [
        ([TASK], {}, False),
        ([TASK, "--qemu"], {}, True),
        ([TASK], {"ISTIO_DOCKER_QEMU": "1"}, True),
        ([TASK], {"ISTIO_DOCKER_QEMU": "true"}, True),
        ([TASK], {"ISTIO_DOCKER_QEMU": "no"}, False),
    ],
)
def test_qemu(argv: list[str], environ: dict[str, str], qemu: bool) -> None:
    assert read_options(argv, environ).qemu is qemu


def test_flags_and_their_conflicts() -> None:
    options = read_options([TASK, "--save", "--no-cache"], {})
    assert options.save and options.no_cache and not options.no_clobber
    assert read_options([TASK, "--push", "--no-clobber", "--hub", "h.io"], {}).no_clobber
    with pytest.raises(UserError, match="--push and --save are mutually exclusive"):
        read_options([TASK, "--push", "--save", "--hub", "h.io"], {})
    with pytest.raises(UserError, match="invalid variant 'Bad'"):
        read_options([TASK, "--variants", "Bad"], {})


@pytest.mark.parametrize(
    ("argv", "compression"),
    [
        ([TASK], "none"),
        ([TASK, "--push", "--hub", "127.0.0.1:5000/x"], "none"),
        ([TASK, "--push", "--hub", "localhost:5000,127.0.0.1:5001"], "none"),
        ([TASK, "--push", "--hub", "gcr.io/istio"], "gzip"),
        ([TASK, "--push", "--hub", "localhost:5000,gcr.io/istio"], "gzip"),
        ([TASK, "--push", "--hub", "gcr.io/istio", "--compression", "zstd"], "zstd"),
        ([TASK, "--compression", "gzip"], "gzip"),
    ],
)
def test_compression_is_chosen_once_from_the_destinations(
    argv: list[str], compression: str
) -> None:
    assert read_options(argv, {}).layer_compression == compression


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        ([TASK], {}, ""),
        ([TASK], {"DOIT_OCI_CACHE": "/ci/cache"}, "/ci/cache"),
        ([TASK, "--cache-dir", "c"], {"DOIT_OCI_CACHE": "/ci/cache"}, "c"),
        (["-n", "2", TASK, "--cache-dir=/x"], {}, "/x"),
    ],
)
def test_cache_dir(argv: list[str], environ: dict[str, str], expected: str) -> None:
    assert read_options(argv, environ).cache_dir == expected


def test_cache_repo() -> None:
    assert read_options([TASK, "--cache-repo", "r.io:5000/team/cache"], {}).cache_repo == (
        "r.io:5000/team/cache"
    )
    assert read_options([TASK], {"CACHE_REPO": "r.io/c"}).cache_repo == "r.io/c"
    with pytest.raises(UserError, match="invalid layer cache repository 'team/cache'"):
        read_options([TASK, "--cache-repo", "team/cache"], {})


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("--tags", "doit build_images: unknown option --tags (did you mean --tag?)"),
        ("--saved=x", "doit build_images: unknown option --saved (did you mean --save?)"),
        ("--nope", "doit build_images: unknown option --nope; see doit build_images --help"),
    ],
)
def test_an_unknown_option_is_one_line_with_the_closest(word: str, message: str) -> None:
    with pytest.raises(UserError) as caught:
        read_argv([TASK, "--tag", "t", word], TASK)
    assert str(caught.value).startswith(message)


def test_help_after_a_task_shows_its_options_from_the_one_table() -> None:
    with pytest.raises(HelpWanted) as caught:
        read_argv(["list", "status", "--tag", "t", "--help"], ("build_images", "status"))
    assert caught.value.task == "status"
    text = help_text("status")
    for option in OPTIONS:
        assert f"--{option.flag}" in text
        for name in option.env:
            assert name in option.help
        assert option.default in option.help
    assert "--plan=VALUE" in text and "(env PLAN; default plans/images.yaml)" in text
    assert "--push " in text and "--push=VALUE" not in text


def test_load_options() -> None:
    assert not read_options([TASK], {}).load
    plain = read_options([TASK, "--load"], {})
    assert plain.load and plain.load_runtime == "" and plain.load_platform is None
    chosen = read_options([TASK, "--load-runtime=kind:dev"], {})
    assert chosen.load and chosen.load_runtime == "kind:dev"  # naming a runtime loads
    quiet = read_options([TASK], {"LOAD_RUNTIME": "podman"})
    assert not quiet.load and quiet.load_runtime == "podman"  # the environment only chooses
    named = read_options([TASK], {"LOAD": "containerd:ns1", "LOAD_PLATFORM": "linux/arm64"})
    assert named.load and named.load_runtime == "containerd:ns1"
    assert str(named.load_platform) == "linux/arm64"
    assert read_options([TASK], {"LOAD": "true"}).load_runtime == ""
    assert not read_options([TASK], {"LOAD": "false"}).load
    flag_wins = read_options([TASK, "--load-runtime", "docker"], {"LOAD": "podman"})
    assert flag_wins.load_runtime == "docker"


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (
            [TASK, "--load-runtime=dockerd"],
            {},
            "options: unknown runtime 'dockerd' to load into; give --load-runtime=docker,"
            " podman, containerd[:namespace] or kind[:cluster] (or LOAD, LOAD_RUNTIME)",
        ),
        ([TASK], {"LOAD": "docker:x"}, "unknown runtime 'docker:x' to load into"),
        ([TASK, "--load", "--load-platform", "arm64"], {}, "write --load-platform linux/amd64"),
    ],
)
def test_load_option_errors(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(UserError) as caught:
        read_options(argv, env)
    assert message in str(caught.value)
