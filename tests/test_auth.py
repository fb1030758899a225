"""registry.auth: challenge parsing, and the Basic/Bearer flow against a fake registry.

The fake is an ``httpx.MockTransport`` handler playing a registry (``registry.test``), its
token server (``auth.test``) and a blob store (``storage.test``): it checks what a real
distribution registry checks (credentials, the scopes a token grants, expired tokens) and
records every request, so the tests can count round trips exactly.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import httpx
import pytest

from doit_oci.registry.auth import RegistryAuth, merge_scopes
from doit_oci.registry.challenge import Challenge, parse_challenge
from doit_oci.registry.credentials import Credentials
from doit_oci.registry.errors import AuthError

REGISTRY = "registry.test"
BASE = f"https://{REGISTRY}"
REALM = "https://auth.test/token"
SERVICE = "registry.test"
USER = "alice"
PASSWORD = "pa55-w0rd-secret"
IDENTITY = "identity-token-secret"
LOGIN = Credentials(username=USER, password=PASSWORD)
TOKEN_LOGIN = Credentials(username="", password="", identity_token=IDENTITY)
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

# ---------------------------------------------------------------------------------------
# WWW-Authenticate parsing
# ---------------------------------------------------------------------------------------


def ch(scheme: str, **params: str) -> Challenge:
    return Challenge(scheme, tuple(params.items()))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", []),
        ("   ", []),
        ("Basic", [ch("basic")]),
        ('Basic realm="Registry Realm"', [ch("basic", realm="Registry Realm")]),
        ("basic realm=simple", [ch("basic", realm="simple")]),
        ('BASIC REALM="x"', [ch("basic", realm="x")]),
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:library/ubuntu:pull"',
            [
                ch(
                    "bearer",
                    realm="https://auth.docker.io/token",
                    service="registry.docker.io",
                    scope="repository:library/ubuntu:pull",
                )
            ],
        ),
        (
            'Bearer realm="https://a/t", scope="repository:x/y:pull,push"',
            [ch("bearer", realm="https://a/t", scope="repository:x/y:pull,push")],
        ),
        (
            'Bearer realm = "https://a/t" , service = "s"',
            [ch("bearer", realm="https://a/t", service="s")],
        ),
        ('Bearer realm="a\\"b\\\\c"', [ch("bearer", realm='a"b\\c')]),
        ('Bearer realm="\\x"', [ch("bearer", realm="x")]),
        ('Bearer realm="with, comma and = sign"', [ch("bearer", realm="with, comma and = sign")]),
        (
            'Basic realm="one", Bearer realm="two",service="s"',
            [ch("basic", realm="one"), ch("bearer", realm="two", service="s")],
        ),
        ("Basic, Bearer realm=x", [ch("basic"), ch("bearer", realm="x")]),
        ("Negotiate, Basic realm=x", [ch("negotiate"), ch("basic", realm="x")]),
        ("Negotiate abc123==, Basic realm=x", [ch("negotiate"), ch("basic", realm="x")]),
        (
            "Newauth realm=apps, type=1, title=Login",
            [ch("newauth", realm="apps", type="1", title="Login")],
        ),
        (
            "Bearer realm=https://auth.test/token,service=reg",
            [ch("bearer", realm="https://auth.test/token", service="reg")],
        ),
        ('Bearer realm="x",,, service="s",', [ch("bearer", realm="x", service="s")]),
        (
            'Bearer realm="x",error="insufficient_scope",'
            'scope="repository:a:pull repository:b:pull"',
            [
                ch(
                    "bearer",
                    realm="x",
                    error="insufficient_scope",
                    scope="repository:a:pull repository:b:pull",
                )
            ],
        ),
        ('Bearer realm="unterminated', [ch("bearer", realm="unterminated")]),
        ('Bearer realm=""', [ch("bearer", realm="")]),
        ('Bearer Realm="x", SERVICE="Reg"', [ch("bearer", realm="x", service="Reg")]),
        ('realm="x", Basic', [ch("basic")]),
        ("Bearer token68abc=", [ch("bearer")]),
        ('Bearer realm="x"\t,\tservice="y"', [ch("bearer", realm="x", service="y")]),
        ('Custom a="1", a="2"', [Challenge("custom", (("a", "1"), ("a", "2")))]),
    ],
)
def test_parse_challenge(header: str, expected: list[Challenge]) -> None:
    assert parse_challenge(header) == expected


def test_challenge_get_is_case_insensitive_and_takes_the_first_value() -> None:
    challenge = Challenge("custom", (("realm", "r"), ("a", "1"), ("a", "2")))
    assert challenge.get("REALM") == "r"
    assert challenge.get("a") == "1"
    assert challenge.get("missing") == ""
    assert challenge.get("missing", "d") == "d"


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        ((), ()),
        ((["repository:a:pull"],), ("repository:a:pull",)),
        ((["repository:a:push"], ["repository:a:pull"]), ("repository:a:pull,push",)),
        (
            (
                ["repository:team/app:pull,push"],
                ["repository:team/base:pull", "repository:team/app:pull"],
            ),
            ("repository:team/app:pull,push", "repository:team/base:pull"),
        ),
        ((["repository:a:push,pull,pull"],), ("repository:a:pull,push",)),
        ((["registry:catalog:*"],), ("registry:catalog:*",)),
        ((["repository:localhost:5000/x:pull"],), ("repository:localhost:5000/x:pull",)),
        ((["opaque", "opaque"],), ("opaque",)),
    ],
)
def test_merge_scopes(groups: tuple[list[str], ...], expected: tuple[str, ...]) -> None:
    assert merge_scopes(*groups) == expected


# ---------------------------------------------------------------------------------------
# The fake registry
# ---------------------------------------------------------------------------------------

Grant = frozenset[tuple[str, str]]  # (repository, action)


def required_access(request: httpx.Request) -> tuple[str, Grant]:
    """The scope a distribution registry asks for this request, and the access it needs."""
    parts = request.url.path.split("/")
    if request.url.path in ("/v2/", "/v2"):
        return "", frozenset()
    # /v2/<name...>/(blobs|manifests|tags)/...
    kinds = [i for i, part in enumerate(parts) if part in ("blobs", "manifests", "tags")]
    name = "/".join(parts[2 : kinds[-1]])
    actions = ("pull",) if request.method in ("GET", "HEAD") else ("pull", "push")
    need = {(name, action) for action in actions}
    source = request.url.params.get("from")
    if source:
        need.add((source, "pull"))
    return f"repository:{name}:{','.join(actions)}", frozenset(need)


def grant_of(scopes: list[str]) -> Grant:
    granted: set[tuple[str, str]] = set()
    for scope in scopes:
        rest = scope.partition(":")[2]
        name, _, actions = rest.rpartition(":")
        granted.update((name, action) for action in actions.split(","))
    return frozenset(granted)


@dataclass
class FakeRegistry:
    mode: str = "bearer"  # "bearer", "basic" or "open"
    anonymous_pull: bool = True
    oauth: bool = True  # the token server answers POST (OAuth2)
    expires_in: int | None = 300
    token_status: int = 200
    token_body: bytes | None = None  # replaces the token server's answer
    token_delay: float = 0.0
    realm: str = REALM
    challenge_scope: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)
    registry_requests: list[httpx.Request] = field(default_factory=list)
    seen_authorizations: list[str | None] = field(default_factory=list)  # as each arrived
    token_requests: list[httpx.Request] = field(default_factory=list)
    storage_requests: list[httpx.Request] = field(default_factory=list)
    bodies: list[int] = field(default_factory=list)
    tokens: dict[str, Grant] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host == "auth.test":
            return self.token_server(request)
        if host == "storage.test":
            request.read()
            with self.lock:
                self.storage_requests.append(request)
            return httpx.Response(200, content=b"blob")
        return self.registry(request)

    # the registry ----------------------------------------------------------------------

    def registry(self, request: httpx.Request) -> httpx.Response:
        body = b"".join(request.stream)  # type: ignore[arg-type]
        with self.lock:
            self.registry_requests.append(request)
            self.seen_authorizations.append(request.headers.get("authorization"))
            if body:
                self.bodies.append(len(body))
        if self.mode == "open":
            return self.ok(request)
        header = request.headers.get("authorization", "")
        if self.mode == "basic":
            if header == BASIC:
                return self.ok(request)
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="Registry"'})
        scope, need = required_access(request)
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        with self.lock:
            granted = self.tokens.get(token)
            valid = granted is not None and token not in self.revoked
        if valid and need <= (granted or frozenset()):
            return self.ok(request)
        challenge = f'Bearer realm="{self.realm}",service="{SERVICE}"'
        if scope and self.challenge_scope:
            challenge += f',scope="{scope}"'
        if token:
            challenge += ',error="insufficient_scope"' if valid else ',error="invalid_token"'
        return httpx.Response(
            401,
            headers={"WWW-Authenticate": challenge},
            json={"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
        )

    def ok(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/redirect"):
            return httpx.Response(307, headers={"Location": "https://storage.test/blob?sig=1"})
        return httpx.Response(200, content=b"ok")

    # the token server ------------------------------------------------------------------

    def token_server(self, request: httpx.Request) -> httpx.Response:
        request.read()
        if self.token_delay:
            time.sleep(self.token_delay)
        with self.lock:
            self.token_requests.append(request)
        if self.token_status != 200 or self.token_body is not None:
            return httpx.Response(self.token_status, content=self.token_body or b"")
        if request.method == "POST":
            if not self.oauth:
                return httpx.Response(404)
            form = dict(parse_qsl(request.content.decode()))
            if form.get("refresh_token") not in (IDENTITY, "new-refresh-token"):
                return httpx.Response(401, json={"error": "invalid_grant"})
            scopes = form.get("scope", "").split()
            return self.issue(scopes, "access_token", refresh="new-refresh-token")
        scopes = request.url.params.get_list("scope")
        header = request.headers.get("authorization")
        if header is None:
            if not self.anonymous_pull:
                scopes = []
            scopes = [s for s in scopes if s.endswith(":pull")]
        elif header != BASIC:
            return httpx.Response(401, json={"details": "incorrect username or password"})
        return self.issue(scopes, "token")

    def issue(self, scopes: list[str], key: str, refresh: str = "") -> httpx.Response:
        with self.lock:
            token = f"tok-{len(self.tokens) + 1}"
            self.tokens[token] = grant_of(scopes)
        body: dict[str, object] = {key: token}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        if refresh:
            body["refresh_token"] = refresh
        return httpx.Response(200, json=body)

    # views -----------------------------------------------------------------------------

    def token_query(self, index: int = 0) -> list[tuple[str, str]]:
        return list(self.token_requests[index].url.params.multi_items())

    def authorizations(self) -> list[str | None]:
        return list(self.seen_authorizations)


class StreamingMockTransport(httpx.MockTransport):
    """A MockTransport that leaves the request body to the handler, as a real one streams it.

    ``httpx.MockTransport`` reads the body into the request first, which would hide
    whether a replayed request streams its body again.
    """

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.handler(request)
        assert isinstance(response, httpx.Response)
        return response


def client_for(
    fake: FakeRegistry,
    credentials: Credentials | None,
    clock: Callable[[], float] = time.monotonic,
) -> httpx.Client:
    auth = RegistryAuth(REGISTRY, credentials, clock=clock)
    return httpx.Client(transport=StreamingMockTransport(fake), auth=auth)


def get(client: httpx.Client, path: str, *scopes: str, method: str = "GET") -> httpx.Response:
    request = client.build_request(method, BASE + path, extensions={"registry_scopes": scopes})
    return client.send(request)


PULL_APP = "repository:team/app:pull"
PUSH_APP = "repository:team/app:pull,push"
PULL_BASE = "repository:team/base:pull"

# ---------------------------------------------------------------------------------------
# The flow
# ---------------------------------------------------------------------------------------


def test_an_open_registry_gets_no_authorization_and_no_token_request() -> None:
    fake = FakeRegistry(mode="open")
    with client_for(fake, LOGIN) as client:
        assert get(client, "/v2/").status_code == 200
        assert get(client, "/v2/team/app/manifests/1", PULL_APP).status_code == 200
    assert fake.authorizations() == [None, None]
    assert fake.token_requests == []


def test_basic_retries_once_with_credentials_then_sends_them_up_front() -> None:
    fake = FakeRegistry(mode="basic")
    with client_for(fake, LOGIN) as client:
        assert get(client, "/v2/").status_code == 200
        assert get(client, "/v2/team/app/manifests/1", PULL_APP).status_code == 200
    assert fake.authorizations() == [None, BASIC, BASIC]
    assert fake.token_requests == []


def test_basic_without_credentials_is_an_error_naming_registry_and_realm() -> None:
    fake = FakeRegistry(mode="basic")
    with client_for(fake, None) as client, pytest.raises(AuthError) as caught:
        get(client, "/v2/")
    assert str(caught.value) == (
        "registry registry.test requires a login (Basic realm 'Registry'):"
        " run `docker login registry.test` or give its credentials"
    )


def test_basic_with_wrong_credentials_returns_the_second_401() -> None:
    fake = FakeRegistry(mode="basic")
    wrong = Credentials(username=USER, password="wrong")
    with client_for(fake, wrong) as client:
        response = get(client, "/v2/")
        assert response.status_code == 401
        assert get(client, "/v2/").status_code == 401
    # the first call: anonymous, then Basic; the second: Basic up front, not retried
    assert len(fake.registry_requests) == 3


def test_bearer_anonymous_fetches_a_pull_token_without_authorization() -> None:
    fake = FakeRegistry()
    with client_for(fake, None) as client:
        assert get(client, "/v2/team/app/manifests/1", PULL_APP).status_code == 200
    assert len(fake.token_requests) == 1
    token_request = fake.token_requests[0]
    assert token_request.method == "GET"
    assert "authorization" not in token_request.headers
    assert fake.token_query() == [("scope", PULL_APP), ("service", SERVICE)]
    assert fake.authorizations() == [None, "Bearer tok-1"]


def test_bearer_with_credentials_sends_basic_to_the_realm_only() -> None:
    fake = FakeRegistry(anonymous_pull=False)
    with client_for(fake, LOGIN) as client:
        response = get(client, "/v2/team/app/blobs/uploads/", PUSH_APP, method="POST")
        assert response.status_code == 200
    assert fake.token_requests[0].headers["authorization"] == BASIC
    assert fake.token_query() == [("scope", PUSH_APP), ("service", SERVICE), ("account", USER)]
    assert fake.authorizations() == [None, "Bearer tok-1"]
    assert BASIC not in fake.authorizations()


def test_mount_scopes_are_merged_and_sent_as_repeated_scope_params() -> None:
    fake = FakeRegistry()
    with client_for(fake, LOGIN) as client:
        response = get(
            client,
            "/v2/team/app/blobs/uploads/?mount=sha256:aa&from=team/base",
            PUSH_APP,
            PULL_BASE,
            PULL_APP,
            method="POST",
        )
        assert response.status_code == 200
    assert len(fake.token_requests) == 1
    assert fake.token_query() == [
        ("scope", PUSH_APP),
        ("scope", PULL_BASE),
        ("service", SERVICE),
        ("account", USER),
    ]
    assert str(fake.token_requests[0].url) == (
        "https://auth.test/token?scope=repository%3Ateam%2Fapp%3Apull%2Cpush"
        "&scope=repository%3Ateam%2Fbase%3Apull&service=registry.test&account=alice"
    )


def test_challenge_scope_is_merged_with_the_request_scopes() -> None:
    fake = FakeRegistry()
    with client_for(fake, LOGIN) as client:
        # The request names only the mount source; the challenge names the target.
        response = get(
            client,
            "/v2/team/app/blobs/uploads/?mount=sha256:aa&from=team/base",
            PULL_BASE,
            method="POST",
        )
        assert response.status_code == 200
    assert fake.token_query() == [
        ("scope", PUSH_APP),
        ("scope", PULL_BASE),
        ("service", SERVICE),
        ("account", USER),
    ]


def test_tokens_are_cached_one_per_scope_set() -> None:
    fake = FakeRegistry()
    with client_for(fake, LOGIN) as client:
        for _ in range(3):
            assert get(client, "/v2/team/app/manifests/1", PULL_APP).status_code == 200
        assert get(client, "/v2/team/app/blobs/sha256:aa", PULL_APP, method="HEAD").is_success
        assert get(client, "/v2/team/base/manifests/1", PULL_BASE).status_code == 200
        assert get(client, "/v2/team/app/manifests/1", PULL_APP).status_code == 200
        assert get(client, "/v2/team/base/manifests/2", PULL_BASE).status_code == 200
    assert len(fake.token_requests) == 2
    # Only the very first request met a 401: once the realm is known, a new scope set gets
    # its token before the request is sent.
    assert fake.authorizations() == [None] + ["Bearer tok-1"] * 4 + [
        "Bearer tok-2",
        "Bearer tok-1",
        "Bearer tok-2",
    ]


def run_threads(count: int, work: Callable[[int], httpx.Response]) -> list[int]:
    barrier = threading.Barrier(count)
    statuses: list[int] = [0] * count

    def worker(index: int) -> None:
        barrier.wait()
        statuses[index] = work(index).status_code

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return statuses


def test_eight_threads_at_once_fetch_one_token() -> None:
    fake = FakeRegistry(token_delay=0.1)
    with client_for(fake, LOGIN) as client:
        statuses = run_threads(8, lambda i: get(client, f"/v2/team/app/blobs/b{i}", PULL_APP))
    assert statuses == [200] * 8
    assert len(fake.token_requests) == 1
    assert set(fake.authorizations()) == {None, "Bearer tok-1"}


def test_eight_threads_on_two_scope_sets_fetch_two_tokens() -> None:
    fake = FakeRegistry(token_delay=0.05)
    with client_for(fake, LOGIN) as client:
        assert get(client, "/v2/").status_code == 200  # learns the realm
        statuses = run_threads(
            8,
            lambda i: (
                get(client, "/v2/team/app/blobs/b", PULL_APP)
                if i % 2
                else get(client, "/v2/team/base/blobs/b", PULL_BASE)
            ),
        )
    assert statuses == [200] * 8
    assert len(fake.token_requests) == 3  # the ping's scope-less token, app, base


def test_an_expired_token_mid_push_is_refreshed_once() -> None:
    fake = FakeRegistry()
    with client_for(fake, LOGIN) as client:
        for index in range(3):
            assert get(client, f"/v2/team/app/blobs/uploads/{index}", PUSH_APP, method="PUT")
        fake.revoked.add("tok-1")  # the token server's token expired early
        for index in range(3, 6):
            response = get(client, f"/v2/team/app/blobs/uploads/{index}", PUSH_APP, method="PUT")
            assert response.status_code == 200
    assert len(fake.token_requests) == 2
    assert fake.authorizations() == [None] + ["Bearer tok-1"] * 4 + ["Bearer tok-2"] * 3


def test_a_token_fetch_that_fails_in_transit_releases_its_lock() -> None:
    fake = FakeRegistry()
    failures = [1]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test" and failures:
            failures.pop()
            raise httpx.ConnectError("connection refused", request=request)
        return fake(request)

    auth = RegistryAuth(REGISTRY, LOGIN)
    with httpx.Client(transport=StreamingMockTransport(handler), auth=auth) as client:
        with pytest.raises(httpx.ConnectError):
            get(client, "/v2/team/app/manifests/1", PULL_APP)
        done = threading.Event()
        statuses: list[int] = []

        def again() -> None:
            statuses.append(get(client, "/v2/team/app/manifests/1", PULL_APP).status_code)
            done.set()

        threading.Thread(target=again, daemon=True).start()
        assert done.wait(timeout=10), "the token lock was left held"
    assert statuses == [200]
    assert len(fake.token_requests) == 1


def test_a_second_401_after_a_fresh_token_is_returned() -> None:
    fake = FakeRegistry(anonymous_pull=False)
    with client_for(fake, None) as client:
        response = get(client, "/v2/team/app/manifests/1", PULL_APP)
        assert response.status_code == 401
        assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
        # The realm is now known: the next call fetches a token up front, is refused, and
        # does not fetch again for the same scopes.
        assert get(client, "/v2/team/base/manifests/1", PULL_BASE).status_code == 401
    assert len(fake.token_requests) == 2
    assert len(fake.registry_requests) == 3


def test_a_cached_token_past_its_lifetime_is_fetched_again_before_sending() -> None:
    now = [1000.0]
    fake = FakeRegistry(expires_in=60)
    with client_for(fake, LOGIN, clock=lambda: now[0]) as client:
        assert get(client, "/v2/team/app/manifests/1", PULL_APP).status_code == 200
        now[0] += 49  # lifetime 60 s, dropped 10 s early
        assert get(client, "/v2/team/app/manifests/1", PULL_APP).status_code == 200
        now[0] += 2
        assert get(client, "/v2/team/app/manifests/1", PULL_APP).status_code == 200
    assert len(fake.token_requests) == 2
    assert fake.authorizations() == [None, "Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


def test_no_expires_in_means_sixty_seconds() -> None:
    now = [0.0]
    fake = FakeRegistry(expires_in=None)
    with client_for(fake, LOGIN, clock=lambda: now[0]) as client:
        get(client, "/v2/team/app/manifests/1", PULL_APP)
        now[0] = 49.0
        get(client, "/v2/team/app/manifests/1", PULL_APP)
        now[0] = 50.0
        get(client, "/v2/team/app/manifests/1", PULL_APP)
    assert len(fake.token_requests) == 2


def test_insufficient_scope_fetches_a_wider_token() -> None:
    fake = FakeRegistry()
    with client_for(fake, LOGIN) as client:
        assert get(client, "/v2/team/app/manifests/1", PULL_APP).status_code == 200
        # A push that did not declare its scopes: the challenge names them.
        assert get(client, "/v2/team/app/manifests/1", PULL_APP, method="PUT").status_code == 200
    assert [q for r in fake.token_requests for q in r.url.params.get_list("scope")] == [
        PULL_APP,
        PUSH_APP,
    ]


def test_an_identity_token_is_exchanged_by_an_oauth2_post() -> None:
    fake = FakeRegistry(anonymous_pull=False)
    with client_for(fake, TOKEN_LOGIN) as client:
        response = get(
            client,
            "/v2/team/app/blobs/uploads/?mount=sha256:aa&from=team/base",
            PUSH_APP,
            PULL_BASE,
            method="POST",
        )
        assert response.status_code == 200
        assert get(client, "/v2/team/other/manifests/1", "repository:team/other:pull").is_success
    first = fake.token_requests[0]
    assert first.method == "POST"
    assert first.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "authorization" not in first.headers
    assert dict(parse_qsl(first.content.decode())) == {
        "grant_type": "refresh_token",
        "refresh_token": IDENTITY,
        "client_id": "doit-oci",
        "service": SERVICE,
        "scope": f"{PUSH_APP} {PULL_BASE}",
    }
    # The server's new refresh token replaces the identity token for later exchanges.
    second = dict(parse_qsl(fake.token_requests[1].content.decode()))
    assert second["refresh_token"] == "new-refresh-token"
    assert fake.authorizations() == [None, "Bearer tok-1", "Bearer tok-2"]


def test_an_identity_token_falls_back_to_get_when_oauth2_is_not_served() -> None:
    fake = FakeRegistry(oauth=False)
    with client_for(fake, TOKEN_LOGIN) as client:
        assert get(client, "/v2/team/app/manifests/1", PULL_APP).status_code == 200
    assert [r.method for r in fake.token_requests] == ["POST", "GET"]
    assert "authorization" not in fake.token_requests[1].headers


@pytest.mark.parametrize(
    ("status", "body", "credentials", "message"),
    [
        (
            403,
            json.dumps({"errors": [{"code": "DENIED", "message": "access denied"}]}).encode(),
            LOGIN,
            "token server https://auth.test/token for registry registry.test answered 403"
            " Forbidden (access denied): check the login for registry.test"
            " (`docker login registry.test`)",
        ),
        (
            500,
            b"<html>oops</html>",
            None,
            "token server https://auth.test/token for registry registry.test answered 500"
            " Internal Server Error: log in with `docker login registry.test` if it is private",
        ),
        (
            401,
            json.dumps({"details": f"bad password {PASSWORD} for\n{USER}"}).encode(),
            LOGIN,
            "token server https://auth.test/token for registry registry.test answered 401"
            " Unauthorized (bad password <redacted> for alice): check the login for"
            " registry.test (`docker login registry.test`)",
        ),
        (
            400,
            json.dumps(
                {"error": "invalid_grant", "error_description": "refresh token expired"}
            ).encode(),
            TOKEN_LOGIN,
            "token server https://auth.test/token for registry registry.test answered 400"
            " Bad Request (refresh token expired): check the login for registry.test"
            " (`docker login registry.test`)",
        ),
        (
            200,
            b'{"nothing": "here"}',
            LOGIN,
            "token server https://auth.test/token for registry registry.test answered without"
            " a token: the realm is not a distribution token server",
        ),
        (
            200,
            b"not json",
            LOGIN,
            "token server https://auth.test/token for registry registry.test answered without"
            " a token: the realm is not a distribution token server",
        ),
    ],
)
def test_token_server_failures_are_auth_errors(
    status: int, body: bytes, credentials: Credentials | None, message: str
) -> None:
    fake = FakeRegistry(token_status=status, token_body=body)
    with client_for(fake, credentials) as client, pytest.raises(AuthError) as caught:
        get(client, "/v2/team/app/manifests/1", PULL_APP)
    assert str(caught.value) == message


def test_the_realm_in_messages_has_no_query() -> None:
    fake = FakeRegistry(realm="https://auth.test/token?tenant=x", token_status=503)
    with client_for(fake, None) as client, pytest.raises(AuthError) as caught:
        get(client, "/v2/team/app/manifests/1", PULL_APP)
    assert str(caught.value).startswith(
        "token server https://auth.test/token for registry registry.test answered 503"
    )
    assert fake.token_query() == [("tenant", "x"), ("scope", PULL_APP), ("service", SERVICE)]


def test_a_plain_http_realm_for_an_https_registry_is_refused() -> None:
    fake = FakeRegistry(realm="http://auth.test/token")
    with client_for(fake, LOGIN) as client, pytest.raises(AuthError) as caught:
        get(client, "/v2/team/app/manifests/1", PULL_APP)
    assert str(caught.value) == (
        "registry registry.test named a plain-http token realm http://auth.test/token for an"
        " https registry: refused, as it would send credentials in clear"
    )
    assert fake.token_requests == []


@pytest.mark.parametrize(
    ("realm", "message"),
    [
        (
            "",
            "registry registry.test asked for a Bearer token but named no realm to get it"
            " from: the registry's token auth is misconfigured",
        ),
        (
            "ftp://auth.test/token",
            "registry registry.test named a token realm 'ftp://auth.test/token' that is not an"
            " http(s) URL: the registry's token auth is misconfigured",
        ),
    ],
)
def test_an_unusable_realm_is_an_error(realm: str, message: str) -> None:
    fake = FakeRegistry(realm=realm)
    with client_for(fake, LOGIN) as client, pytest.raises(AuthError) as caught:
        get(client, "/v2/team/app/manifests/1", PULL_APP)
    assert str(caught.value) == message


def test_a_relative_realm_is_resolved_against_the_registry() -> None:
    fake = FakeRegistry(realm="/token", mode="bearer")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return fake.token_server(request)
        return fake(request)

    auth = RegistryAuth(REGISTRY, LOGIN)
    with httpx.Client(transport=StreamingMockTransport(handler), auth=auth) as client:
        assert get(client, "/v2/team/app/manifests/1", PULL_APP).status_code == 200
    assert str(fake.token_requests[0].url).startswith("https://registry.test/token?")


def test_no_secret_in_any_message_or_repr() -> None:
    texts: list[str] = []
    failing = [
        (FakeRegistry(token_status=401, token_body=f'{{"details": "{PASSWORD}"}}'.encode()), LOGIN),
        (
            FakeRegistry(
                token_status=400, token_body=f'{{"error_description": "{IDENTITY}"}}'.encode()
            ),
            TOKEN_LOGIN,
        ),
        (FakeRegistry(realm="http://auth.test/token"), LOGIN),
        (FakeRegistry(token_body=b"{}"), LOGIN),
    ]
    for fake, credentials in failing:
        with client_for(fake, credentials) as client, pytest.raises(AuthError) as caught:
            get(client, "/v2/team/app/manifests/1", PULL_APP)
        texts += [str(caught.value), repr(caught.value)]
    fake = FakeRegistry()
    auth = RegistryAuth(REGISTRY, LOGIN)
    with httpx.Client(transport=StreamingMockTransport(fake), auth=auth) as client:
        get(client, "/v2/team/app/manifests/1", PULL_APP)
    issued = list(fake.tokens)
    texts += [repr(auth), str(auth), repr(LOGIN), str(LOGIN), repr(TOKEN_LOGIN), f"{TOKEN_LOGIN}"]
    texts += [repr(auth._tokens), repr(vars(auth).get("_tokens"))]
    assert repr(auth) == "RegistryAuth('registry.test', credentials=<set>)"
    assert issued == ["tok-1"]
    for text in texts:
        for secret in (PASSWORD, IDENTITY, BASIC.split()[1], *issued):
            assert secret not in text, text


class Body:
    """A re-iterable request body that counts how often and how much it was read."""

    def __init__(self, chunks: int, size: int) -> None:
        self.chunks = chunks
        self.size = size
        self.reads = 0
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        self.reads += 1
        for _ in range(self.chunks):
            self.sent += self.size
            yield b"x" * self.size


def test_a_reiterable_body_is_sent_whole_again_after_a_401() -> None:
    fake = FakeRegistry(mode="basic")
    body = Body(chunks=16, size=64 * 1024)
    with client_for(fake, LOGIN) as client:
        request = client.build_request(
            "PUT", BASE + "/v2/team/app/blobs/uploads/1?digest=sha256:aa", content=body
        )
        assert client.send(request).status_code == 200
    assert fake.bodies == [16 * 64 * 1024, 16 * 64 * 1024]
    assert (body.reads, body.sent) == (2, 2 * 16 * 64 * 1024)
    assert fake.authorizations() == [None, BASIC]


def test_with_a_known_realm_an_upload_body_is_sent_once() -> None:
    fake = FakeRegistry()
    body = Body(chunks=4, size=1024)
    with client_for(fake, LOGIN) as client:
        assert get(client, "/v2/").status_code == 200
        request = client.build_request(
            "PUT",
            BASE + "/v2/team/app/blobs/uploads/1?digest=sha256:aa",
            content=body,
            extensions={"registry_scopes": (PUSH_APP,)},
        )
        assert client.send(request).status_code == 200
    assert fake.bodies == [4 * 1024]
    assert body.reads == 1


def test_a_redirect_to_another_host_carries_no_authorization() -> None:
    fake = FakeRegistry()
    auth = RegistryAuth(REGISTRY, LOGIN)
    transport = StreamingMockTransport(fake)
    with httpx.Client(transport=transport, auth=auth, follow_redirects=True) as client:
        response = get(client, "/v2/team/app/blobs/redirect", PULL_APP)
        assert response.status_code == 200
        assert response.content == b"blob"
        direct = client.get("https://storage.test/blob?sig=2")
        assert direct.status_code == 200
    assert fake.authorizations() == [None, "Bearer tok-1"]
    assert [r.headers.get("authorization") for r in fake.storage_requests] == [None, None]
    assert [str(r.url) for r in fake.storage_requests] == [
        "https://storage.test/blob?sig=1",
        "https://storage.test/blob?sig=2",
    ]


def test_a_401_from_another_host_is_left_alone() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="other"'})

    auth = RegistryAuth(REGISTRY, LOGIN)
    with httpx.Client(transport=StreamingMockTransport(handler), auth=auth) as client:
        assert client.get("https://other.test/v2/").status_code == 401
    assert len(seen) == 1
    assert "authorization" not in seen[0].headers


@pytest.mark.parametrize(
    ("registry", "url", "authorized"),
    [
        ("localhost:5000", "http://localhost:5000/v2/", True),
        ("localhost:5000", "http://localhost:5001/v2/", False),
        ("localhost:5000", "http://localhost/v2/", False),
        ("registry.test", "https://registry.test/v2/", True),
        ("registry.test", "https://registry.test:8443/v2/", False),
        ("registry.test:443", "https://registry.test/v2/", True),
        ("Registry.Test", "https://registry.test/v2/", True),
        ("[::1]:5000", "http://[::1]:5000/v2/", True),
        ("docker.io", "https://registry-1.docker.io/v2/", True),
        ("docker.io", "https://index.docker.io/v2/", True),
        ("docker.io", "https://auth.docker.io/v2/", False),
    ],
)
def test_authorization_goes_only_to_the_registry_host(
    registry: str, url: str, authorized: bool
) -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        if "authorization" in request.headers:
            return httpx.Response(200)
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})

    auth = RegistryAuth(registry, LOGIN)
    with httpx.Client(transport=StreamingMockTransport(handler), auth=auth) as client:
        status = client.get(url).status_code
    assert status == (200 if authorized else 401)
    assert seen == ([None, BASIC] if authorized else [None])


def test_scopes_must_be_strings() -> None:
    fake = FakeRegistry(mode="open")
    with client_for(fake, None) as client, pytest.raises(TypeError):
        client.send(client.build_request("GET", BASE + "/v2/", extensions={"registry_scopes": 3}))


def test_the_async_client_is_refused() -> None:
    async def main() -> None:
        auth = RegistryAuth(REGISTRY, None)
        transport = StreamingMockTransport(FakeRegistry(mode="open"))
        async with httpx.AsyncClient(transport=transport, auth=auth) as client:
            await client.get(BASE + "/v2/")

    with pytest.raises(NotImplementedError) as caught:
        asyncio.run(main())
    assert str(caught.value) == "RegistryAuth works with httpx.Client, not httpx.AsyncClient"
