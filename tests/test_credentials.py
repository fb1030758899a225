"""registry.credentials: docker's config.json, credential helpers (real subprocesses), secrecy."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from doit_oci.registry.credentials import (
    CredentialError,
    Credentials,
    docker_config_path,
    load_credentials,
)

USER = "bob"
PASSWORD = "hunter2-secret"
TOKEN = "identity-secret-token"


def auth_of(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def write_config(directory: Path, config: dict[str, Any] | str, mode: int = 0o600) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    path.chmod(mode)
    return path


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment whose config is ``tmp_path/docker/config.json``, helpers on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    return {
        "DOCKER_CONFIG": str(tmp_path / "docker"),
        "PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(tmp_path / "home"),
        **extra,
    }


def write_helper(tmp_path: Path, name: str, script: str) -> Path:
    """A ``docker-credential-<name>`` shell script that logs its stdin and arguments."""
    helper = tmp_path / "bin" / f"docker-credential-{name}"
    helper.parent.mkdir(exist_ok=True)
    log = tmp_path / f"{name}.log"
    helper.write_text(
        f'#!/bin/sh\ninput=$(cat)\nprintf "%s %s\\n" "$*" "$input" >> "{log}"\n{script}\n'
    )
    helper.chmod(0o755)
    return log


def printing(username: str, secret: object) -> str:
    return "printf '%s' '" + json.dumps({"Username": username, "Secret": secret}) + "'"


# ---------------------------------------------------------------------------------------
# Credentials and the config path
# ---------------------------------------------------------------------------------------


def test_credentials_never_show_their_secrets() -> None:
    login = Credentials(username=USER, password=PASSWORD)
    token = Credentials(username="", password="", identity_token=TOKEN)
    assert repr(login) == "Credentials(username=<set>, password=<set>, identity_token=<empty>)"
    assert str(token) == "Credentials(username=<empty>, password=<empty>, identity_token=<set>)"
    for text in (repr(login), str(login), f"{login!r}", repr([login]), repr(token)):
        for secret in (USER, PASSWORD, TOKEN):
            assert secret not in text
    assert login == Credentials(USER, PASSWORD)
    assert login.has_password and not token.has_password


@pytest.mark.parametrize(
    ("environ", "home", "expected"),
    [
        ({"DOCKER_CONFIG": "/etc/dc"}, None, "/etc/dc/config.json"),
        ({"DOCKER_CONFIG": "/etc/dc", "HOME": "/home/u"}, Path("/h"), "/etc/dc/config.json"),
        ({"HOME": "/home/u"}, None, "/home/u/.docker/config.json"),
        ({"HOME": "/home/u"}, Path("/h"), "/h/.docker/config.json"),
        ({"DOCKER_CONFIG": "", "HOME": "/home/u"}, None, "/home/u/.docker/config.json"),
    ],
)
def test_docker_config_path(environ: dict[str, str], home: Path | None, expected: str) -> None:
    assert docker_config_path(environ, home) == Path(expected)


def test_home_argument_finds_the_config(tmp_path: Path) -> None:
    write_config(tmp_path / ".docker", {"auths": {"r.test": {"auth": auth_of(USER, PASSWORD)}}})
    assert load_credentials("r.test", {}, home=tmp_path) == Credentials(USER, PASSWORD)


# ---------------------------------------------------------------------------------------
# auths
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "r.test:5000",
        "https://r.test:5000",
        "http://r.test:5000",
        "https://r.test:5000/v1/",
        "https://r.test:5000/v2/",
        "R.TEST:5000",
    ],
)
def test_auths_keys_docker_accepts(tmp_path: Path, key: str) -> None:
    write_config(tmp_path / "docker", {"auths": {key: {"auth": auth_of(USER, PASSWORD)}}})
    found = load_credentials("r.test:5000", env_for(tmp_path))
    assert found == Credentials(USER, PASSWORD)


@pytest.mark.parametrize(
    "key", ["r.test", "r.test:5001", "other.test:5000", "https://x/r.test:5000"]
)
def test_auths_keys_of_other_registries_do_not_match(tmp_path: Path, key: str) -> None:
    write_config(tmp_path / "docker", {"auths": {key: {"auth": auth_of(USER, PASSWORD)}}})
    assert load_credentials("r.test:5000", env_for(tmp_path)) is None


def test_the_exact_key_wins_over_a_converted_one(tmp_path: Path) -> None:
    config = {
        "auths": {
            "https://r.test/v2/": {"auth": auth_of("converted", "p1")},
            "r.test": {"auth": auth_of("exact", "p2")},
        }
    }
    write_config(tmp_path / "docker", config)
    assert load_credentials("r.test", env_for(tmp_path)) == Credentials("exact", "p2")


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"auth": auth_of(USER, PASSWORD)}, Credentials(USER, PASSWORD)),
        ({"auth": auth_of(USER, "pass:with:colons")}, Credentials(USER, "pass:with:colons")),
        ({"username": USER, "password": PASSWORD}, Credentials(USER, PASSWORD)),
        (
            {"auth": auth_of(USER, ""), "identitytoken": TOKEN},
            Credentials(USER, "", identity_token=TOKEN),
        ),
        ({"identitytoken": TOKEN}, Credentials("", "", identity_token=TOKEN)),
        ({}, None),
        ({"auth": ""}, None),
        ({"email": "a@b.c"}, None),
        ({"username": USER}, None),
    ],
)
def test_auths_entry_forms(
    tmp_path: Path, entry: dict[str, str], expected: Credentials | None
) -> None:
    write_config(tmp_path / "docker", {"auths": {"r.test": entry}})
    assert load_credentials("r.test", env_for(tmp_path)) == expected


@pytest.mark.parametrize("registry", ["docker.io", "index.docker.io", "registry-1.docker.io"])
def test_docker_hub_is_keyed_by_the_v1_index_url(tmp_path: Path, registry: str) -> None:
    config = {
        "auths": {
            "https://index.docker.io/v1/": {"auth": auth_of(USER, PASSWORD)},
            "docker.io.example": {"auth": auth_of("other", "x")},
        }
    }
    write_config(tmp_path / "docker", config)
    assert load_credentials(registry, env_for(tmp_path)) == Credentials(USER, PASSWORD)


def test_no_config_file_means_no_credentials(tmp_path: Path) -> None:
    assert load_credentials("r.test", env_for(tmp_path)) is None


@pytest.mark.parametrize("text", ["", "  \n", "{}", '{"auths": {}}', '{"auths": null}'])
def test_a_config_without_logins_means_no_credentials(tmp_path: Path, text: str) -> None:
    write_config(tmp_path / "docker", text)
    assert load_credentials("r.test", env_for(tmp_path)) is None


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


def test_malformed_json_names_the_file_and_line(tmp_path: Path) -> None:
    path = write_config(tmp_path / "docker", '{\n  "auths": {,\n}')
    with pytest.raises(CredentialError) as caught:
        load_credentials("r.test", env_for(tmp_path))
    assert str(caught.value) == (
        f"docker config {path} is not valid JSON (line 2, column 13): fix it or log in again"
        " with `docker login`"
    )


def test_an_unreadable_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "docker" / "config.json"
    path.mkdir(parents=True)
    with pytest.raises(CredentialError) as caught:
        load_credentials("r.test", env_for(tmp_path))
    assert str(caught.value) == (
        f"cannot read docker config {path}: Is a directory; fix it, or set DOCKER_CONFIG to a"
        " directory holding a readable config.json"
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("[]", "docker config {path} is not a JSON object: fix it"),
        ('{"auths": []}', 'docker config {path}: "auths" is not a JSON object: fix it'),
        (
            '{"credHelpers": "x"}',
            'docker config {path}: "credHelpers" is not a JSON object: fix it',
        ),
        ('{"credsStore": 3}', 'docker config {path}: "credsStore" is not a string: fix it'),
        (
            '{"auths": {"r.test": "x"}}',
            'docker config {path}: auths["r.test"] is not a JSON object',
        ),
        (
            '{"auths": {"r.test": {"password": 3}}}',
            'docker config {path}: auths["r.test"].password is not a string: fix it or log in'
            " again with `docker login`",
        ),
        (
            json.dumps({"auths": {"r.test": {"auth": "!!" + PASSWORD}}}),
            'docker config {path}: auths["r.test"].auth is not base64 of "username:password":'
            " log in again with `docker login`",
        ),
        (
            json.dumps(
                {"auths": {"r.test": {"auth": base64.b64encode(PASSWORD.encode()).decode()}}}
            ),
            'docker config {path}: auths["r.test"].auth is not base64 of "username:password":'
            " log in again with `docker login`",
        ),
    ],
)
def test_malformed_configs(tmp_path: Path, config: str, message: str) -> None:
    path = write_config(tmp_path / "docker", config)
    with pytest.raises(CredentialError) as caught:
        load_credentials("r.test", env_for(tmp_path))
    assert str(caught.value) == message.format(path=path)
    assert PASSWORD not in str(caught.value)


# ---------------------------------------------------------------------------------------
# Credential helpers (real subprocesses)
# ---------------------------------------------------------------------------------------


def test_cred_helpers_run_the_helper_with_the_server_url_on_stdin(tmp_path: Path) -> None:
    log = write_helper(tmp_path, "test", printing(USER, PASSWORD))
    config = {
        "credHelpers": {"r.test:5000": "test"},
        "auths": {"r.test:5000": {"auth": auth_of("file", "ignored")}},
    }
    write_config(tmp_path / "docker", config)
    assert load_credentials("r.test:5000", env_for(tmp_path)) == Credentials(USER, PASSWORD)
    assert log.read_text() == "get r.test:5000\n"


def test_a_token_username_means_an_identity_token(tmp_path: Path) -> None:
    write_helper(tmp_path, "test", printing("<token>", TOKEN))
    write_config(tmp_path / "docker", {"credHelpers": {"r.test": "test"}})
    found = load_credentials("r.test", env_for(tmp_path))
    assert found == Credentials("", "", identity_token=TOKEN)


def test_docker_hub_helpers_get_the_v1_index_url(tmp_path: Path) -> None:
    log = write_helper(tmp_path, "test", printing(USER, PASSWORD))
    write_config(tmp_path / "docker", {"credsStore": "test"})
    assert load_credentials("docker.io", env_for(tmp_path)) == Credentials(USER, PASSWORD)
    assert log.read_text() == "get https://index.docker.io/v1/\n"


def test_creds_store_serves_registries_without_a_cred_helper(tmp_path: Path) -> None:
    store_log = write_helper(tmp_path, "store", printing("from-store", "p1"))
    helper_log = write_helper(tmp_path, "test", printing("from-helper", "p2"))
    config = {"credsStore": "store", "credHelpers": {"r.test": "test"}}
    write_config(tmp_path / "docker", config)
    environ = env_for(tmp_path)
    assert load_credentials("r.test", environ) == Credentials("from-helper", "p2")
    assert load_credentials("other.test", environ) == Credentials("from-store", "p1")
    assert helper_log.read_text() == "get r.test\n"
    assert store_log.read_text() == "get other.test\n"


def test_a_configured_helper_is_authoritative_over_auths(tmp_path: Path) -> None:
    """As docker: with credsStore set, auths holds only placeholders and is not read."""
    write_helper(tmp_path, "test", "echo 'credentials not found in native keychain'; exit 1")
    config = {"credsStore": "test", "auths": {"r.test": {"auth": auth_of(USER, PASSWORD)}}}
    write_config(tmp_path / "docker", config)
    assert load_credentials("r.test", env_for(tmp_path)) is None


def test_auths_serve_when_no_helper_is_configured(tmp_path: Path) -> None:
    config = {
        "credHelpers": {"other.test": "missing"},
        "auths": {"r.test": {"auth": auth_of(USER, PASSWORD)}},
    }
    write_config(tmp_path / "docker", config)
    assert load_credentials("r.test", env_for(tmp_path)) == Credentials(USER, PASSWORD)


def test_a_missing_helper_is_an_error_naming_it(tmp_path: Path) -> None:
    path = write_config(tmp_path / "docker", {"credHelpers": {"r.test": "absent"}})
    with pytest.raises(CredentialError) as caught:
        load_credentials("r.test", env_for(tmp_path))
    assert str(caught.value) == (
        f"credential helper docker-credential-absent for r.test is not on PATH: install it, or"
        f' remove credHelpers["r.test"] from {path}'
    )


def test_a_missing_creds_store_is_an_error_naming_it(tmp_path: Path) -> None:
    path = write_config(tmp_path / "docker", {"credsStore": "desktop"})
    with pytest.raises(CredentialError) as caught:
        load_credentials("r.test", env_for(tmp_path))
    assert str(caught.value) == (
        "credential helper docker-credential-desktop for r.test is not on PATH: install it, or"
        f" remove credsStore from {path}"
    )


@pytest.mark.parametrize(
    "script",
    [
        "echo 'credentials not found in native keychain'; exit 1",
        "echo 'Credentials Not Found'; exit 4",
        printing("", ""),
    ],
)
def test_a_helper_without_credentials_means_none(tmp_path: Path, script: str) -> None:
    write_helper(tmp_path, "test", script)
    write_config(tmp_path / "docker", {"credHelpers": {"r.test": "test"}})
    assert load_credentials("r.test", env_for(tmp_path)) is None


def test_a_failing_helper_names_itself_and_its_status_not_its_output(tmp_path: Path) -> None:
    write_helper(tmp_path, "test", f"echo 'partial {PASSWORD}'; echo oops >&2; exit 3")
    write_config(tmp_path / "docker", {"credHelpers": {"r.test": "test"}})
    with pytest.raises(CredentialError) as caught:
        load_credentials("r.test", env_for(tmp_path))
    assert str(caught.value) == (
        "credential helper docker-credential-test failed for r.test (exit status 3): run"
        " `echo r.test | docker-credential-test get` to see why, or log in again with"
        " `docker login r.test`"
    )
    assert PASSWORD not in repr(caught.value)


@pytest.mark.parametrize(
    "script", [f"echo 'not json {PASSWORD}'", "echo '[1, 2]'", printing(USER, 3)]
)
def test_a_helper_printing_garbage_is_an_error(tmp_path: Path, script: str) -> None:
    write_helper(tmp_path, "test", script)
    write_config(tmp_path / "docker", {"credHelpers": {"r.test": "test"}})
    with pytest.raises(CredentialError) as caught:
        load_credentials("r.test", env_for(tmp_path))
    assert str(caught.value) == (
        "credential helper docker-credential-test for r.test printed something that is not"
        ' {"Username": ..., "Secret": ...}: update or reconfigure the helper'
    )
    assert PASSWORD not in str(caught.value)


def test_a_helper_that_is_not_executable_is_an_error(tmp_path: Path) -> None:
    write_helper(tmp_path, "test", printing(USER, PASSWORD))
    (tmp_path / "bin" / "docker-credential-test").chmod(0o644)
    path = write_config(tmp_path / "docker", {"credHelpers": {"r.test": "test"}})
    with pytest.raises(CredentialError) as caught:
        load_credentials("r.test", env_for(tmp_path))
    assert str(caught.value) == (
        "credential helper docker-credential-test for r.test cannot be run (permission"
        f' denied): make it executable, or remove credHelpers["r.test"] from {path}'
    )


def test_a_helper_that_hangs_is_an_error(tmp_path: Path) -> None:
    def hanging(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(args[0], kwargs["timeout"])

    path = write_config(tmp_path / "docker", {"credHelpers": {"r.test": "test"}})
    with pytest.raises(CredentialError) as caught:
        load_credentials("r.test", env_for(tmp_path), run=hanging)
    assert str(caught.value) == (
        "credential helper docker-credential-test for r.test did not answer in 60s: unlock"
        f' its store, or remove credHelpers["r.test"] from {path}'
    )


def test_the_run_argument_gets_the_helper_call(tmp_path: Path) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def fake_run(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append((args, kwargs))
        return subprocess.CompletedProcess(
            args[0], 0, stdout=json.dumps({"Username": "u", "Secret": "s"})
        )

    write_config(tmp_path / "docker", {"credHelpers": {"r.test": "test"}})
    environ = env_for(tmp_path)
    assert load_credentials("r.test", environ, run=fake_run) == Credentials("u", "s")
    assert calls == [
        (
            (["docker-credential-test", "get"],),
            {
                "input": "r.test",
                "capture_output": True,
                "text": True,
                "check": False,
                "env": environ,
                "timeout": 60.0,
            },
        )
    ]


# ---------------------------------------------------------------------------------------
# Permissions
# ---------------------------------------------------------------------------------------


def test_a_config_with_secrets_readable_by_others_warns_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {"auths": {"r.test": {"auth": auth_of(USER, PASSWORD)}}}
    path = write_config(tmp_path / "docker", config, mode=0o644)
    environ = env_for(tmp_path)
    warned: set[Path] = set()
    assert load_credentials("r.test", environ, warned=warned) == Credentials(USER, PASSWORD)
    assert load_credentials("other.test", environ, warned=warned) is None
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"warning: docker config {path} holds registry credentials and is readable by other"
        f" users; chmod 600 {path}\n"
    )
    assert PASSWORD not in captured.err


@pytest.mark.parametrize(
    ("mode", "config", "warns"),
    [
        (0o600, {"auths": {"r.test": {"auth": auth_of(USER, PASSWORD)}}}, False),
        (0o640, {"auths": {"r.test": {"auth": auth_of(USER, PASSWORD)}}}, True),
        (0o604, {"auths": {"r.test": {"identitytoken": TOKEN}}}, True),
        (0o644, {"credsStore": "x", "auths": {"https://index.docker.io/v1/": {}}}, False),
    ],
)
def test_permission_warning_cases(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mode: int,
    config: dict[str, Any],
    warns: bool,
) -> None:
    write_config(tmp_path / "docker", config, mode=mode)
    write_helper(tmp_path, "x", "echo 'credentials not found'; exit 1")
    load_credentials("r.test", env_for(tmp_path))
    err = capsys.readouterr().err
    assert err.count("\n") == (1 if warns else 0)
    assert ("is readable by other users; chmod 600" in err) is warns
