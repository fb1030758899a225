"""Registry credentials from the docker CLI's ``config.json``, as ``docker`` and ``crane`` read it.

The lookup for one registry follows the docker CLI:

1. ``credHelpers[<registry>]`` names a helper for this registry;
2. else ``credsStore`` names a helper for every registry;
3. else ``auths``, keyed by ``host[:port]``, ``https://host``, ``http://host`` or
   ``https://host/v1/`` (any key whose host part is the registry matches); Docker Hub
   (``docker.io``) is keyed ``https://index.docker.io/v1/``.

As in the docker CLI, a configured helper is authoritative: when it has no credentials
for the registry, ``auths`` is not consulted (with ``credsStore`` set, docker keeps only
empty placeholder entries there).

A helper is the program ``docker-credential-<name>``, run as ``<program> get`` with the
server URL on stdin; it prints ``{"Username": ..., "Secret": ...}``. A username of
``<token>`` means the secret is an identity token (an OAuth2 refresh token). A helper
that exits non-zero saying "credentials not found" has none.

Secrets never reach a message: ``Credentials`` shows only whether each field is set, and
``CredentialError`` names files, registries and helpers, never what they hold.
"""

from __future__ import annotations

import base64
import binascii
import json
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
HELPER_PREFIX = "docker-credential-"
TOKEN_USERNAME = "<token>"
HELPER_TIMEOUT = 60.0

_warned_lock = threading.Lock()


@dataclass(frozen=True)
class Credentials:
    """A login for one registry: a username and password, or an identity token."""

    username: str = field(repr=False)
    password: str = field(repr=False)
    identity_token: str = field(default="", repr=False)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={'<set>' if value else '<empty>'}"
            for name, value in (
                ("username", self.username),
                ("password", self.password),
                ("identity_token", self.identity_token),
            )
        )
        return f"Credentials({shown})"

    __str__ = __repr__

    @property
    def has_password(self) -> bool:
        """A username and password pair, usable for Basic authentication."""
        return bool(self.username) and bool(self.password)


class CredentialError(Exception):
    """Credentials could not be read: the message says what, for which registry, what to do."""


def docker_config_path(environ: Mapping[str, str], home: Path | None = None) -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    directory = environ.get("DOCKER_CONFIG", "")
    if directory:
        return Path(directory) / "config.json"
    if home is None:
        home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    return home / ".docker" / "config.json"


def is_docker_hub(registry: str) -> bool:
    return registry.lower() in DOCKER_HUB_ALIASES


def server_url(registry: str) -> str:
    """The name docker files a registry's login under: ``https://index.docker.io/v1/`` for Hub."""
    return DOCKER_HUB_KEY if is_docker_hub(registry) else registry


def load_credentials(
    registry: str,
    environ: Mapping[str, str],
    home: Path | None = None,
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
    warned: set[Path] | None = None,
) -> Credentials | None:
    """The credentials docker would use for ``registry`` (``host[:port]``), or None.
    A config file that other users can read gets a warning, once per file in ``warned``
    (the caller's: ``Clients`` keeps one)."""
    path = docker_config_path(environ, home)
    config = _read_config(path)
    if config is None:
        return None
    _warn_if_exposed(path, config, set() if warned is None else warned)
    helper = _helper_for(registry, config, path)
    if helper is not None:
        name, where = helper
        return _from_helper(registry, name, where, path, environ, run)
    return _from_auths(registry, config, path)


def _read_config(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else "not UTF-8"
        raise CredentialError(
            f"cannot read docker config {path}: {reason}; fix it, or set DOCKER_CONFIG to"
            " a directory holding a readable config.json"
        ) from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise CredentialError(
            f"docker config {path} is not valid JSON (line {error.lineno}, column"
            f" {error.colno}): fix it or log in again with `docker login`"
        ) from None
    if not isinstance(data, dict):
        raise CredentialError(f"docker config {path} is not a JSON object: fix it")
    for key in ("auths", "credHelpers"):
        if key in data and not isinstance(data[key], dict | None):
            raise CredentialError(f'docker config {path}: "{key}" is not a JSON object: fix it')
    if not isinstance(data.get("credsStore", ""), str | None):
        raise CredentialError(f'docker config {path}: "credsStore" is not a string: fix it')
    return data


def _holds_secrets(config: Mapping[str, Any]) -> bool:
    auths = config.get("auths") or {}
    return any(
        isinstance(entry, dict)
        and any(entry.get(key) for key in ("auth", "password", "identitytoken", "registrytoken"))
        for entry in auths.values()
    )


def _warn_if_exposed(path: Path, config: Mapping[str, Any], warned: set[Path]) -> None:
    """One stderr line per file in ``warned`` when other users can read stored secrets."""
    if not _holds_secrets(config):
        return
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return
    with _warned_lock:
        if path in warned:
            return
        warned.add(path)
    print(
        f"warning: docker config {path} holds registry credentials and is readable by"
        f" other users; chmod 600 {path}",
        file=sys.stderr,
    )


def _helper_for(registry: str, config: Mapping[str, Any], path: Path) -> tuple[str, str] | None:
    """The helper name for ``registry`` and where it was configured, or None."""
    helpers = config.get("credHelpers") or {}
    for key in dict.fromkeys((server_url(registry), registry)):
        name = helpers.get(key)
        if name:
            if not isinstance(name, str):
                raise CredentialError(
                    f'docker config {path}: credHelpers["{key}"] is not a string: fix it'
                )
            return name, f'credHelpers["{key}"]'
    store = config.get("credsStore")
    if store:
        return str(store), "credsStore"
    return None


def _from_helper(
    registry: str,
    name: str,
    where: str,
    path: Path,
    environ: Mapping[str, str],
    run: Callable[..., subprocess.CompletedProcess[str]],
) -> Credentials | None:
    program = HELPER_PREFIX + name
    try:
        done = run(
            [program, "get"],
            input=server_url(registry),
            capture_output=True,
            text=True,
            check=False,
            env=dict(environ),
            timeout=HELPER_TIMEOUT,
        )
    except FileNotFoundError:
        raise CredentialError(
            f"credential helper {program} for {registry} is not on PATH: install it, or"
            f" remove {where} from {path}"
        ) from None
    except PermissionError:
        raise CredentialError(
            f"credential helper {program} for {registry} cannot be run (permission denied):"
            f" make it executable, or remove {where} from {path}"
        ) from None
    except subprocess.TimeoutExpired:
        raise CredentialError(
            f"credential helper {program} for {registry} did not answer in"
            f" {HELPER_TIMEOUT:.0f}s: unlock its store, or remove {where} from {path}"
        ) from None
    if done.returncode != 0:
        if "credentials not found" in (done.stdout or "").lower():
            return None
        raise CredentialError(
            f"credential helper {program} failed for {registry} (exit status"
            f" {done.returncode}): run `echo {server_url(registry)} | {program} get` to see"
            f" why, or log in again with `docker login {registry}`"
        )
    try:
        answer = json.loads(done.stdout or "")
    except json.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict) or not all(
        isinstance(answer.get(key, ""), str) for key in ("Username", "Secret")
    ):
        raise CredentialError(
            f"credential helper {program} for {registry} printed something that is not"
            ' {"Username": ..., "Secret": ...}: update or reconfigure the helper'
        )
    username: str = answer.get("Username", "")
    secret: str = answer.get("Secret", "")
    if not secret:
        return None
    if username == TOKEN_USERNAME:
        return Credentials(username="", password="", identity_token=secret)
    return Credentials(username=username, password=secret)


def _host_of(key: str) -> str:
    """The ``host[:port]`` of an ``auths`` key: ``https://host/v1/`` -> ``host``."""
    text = key.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    return text.split("/", 1)[0].lower()


def _candidate_keys(registry: str, auths: Mapping[str, Any]) -> list[str]:
    if is_docker_hub(registry):
        exact = [DOCKER_HUB_KEY]
        hosts = DOCKER_HUB_ALIASES
    else:
        exact = [
            registry,
            f"https://{registry}",
            f"http://{registry}",
            f"https://{registry}/v1/",
        ]
        hosts = frozenset({registry.lower()})
    keys = [key for key in exact if key in auths]
    keys += sorted(key for key in auths if key not in keys and _host_of(key) in hosts)
    return keys


def _from_auths(registry: str, config: Mapping[str, Any], path: Path) -> Credentials | None:
    auths = config.get("auths") or {}
    for key in _candidate_keys(registry, auths):
        entry = auths[key]
        if not isinstance(entry, dict):
            raise CredentialError(f'docker config {path}: auths["{key}"] is not a JSON object')
        credentials = _from_entry(entry, key, path)
        if credentials is not None:
            return credentials
    return None


def _text_field(entry: Mapping[str, Any], name: str, key: str, path: Path) -> str:
    value = entry.get(name) or ""
    if not isinstance(value, str):
        raise CredentialError(
            f'docker config {path}: auths["{key}"].{name} is not a string: fix it or log in'
            " again with `docker login`"
        )
    return value


def _from_entry(entry: Mapping[str, Any], key: str, path: Path) -> Credentials | None:
    auth = _text_field(entry, "auth", key, path)
    identity_token = _text_field(entry, "identitytoken", key, path)
    if auth:
        try:
            decoded = base64.b64decode(auth.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            decoded = ""
        username, colon, password = decoded.partition(":")
        if not colon or not username:
            raise CredentialError(
                f'docker config {path}: auths["{key}"].auth is not base64 of'
                ' "username:password": log in again with `docker login`'
            )
        password = password.strip("\x00")
    else:
        username = _text_field(entry, "username", key, path)
        password = _text_field(entry, "password", key, path)
    if not (username and password) and not identity_token:
        return None
    return Credentials(username=username, password=password, identity_token=identity_token)
