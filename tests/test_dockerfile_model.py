"""rules.dockerfile.model: a COPY step as the parse step's record holds it."""

from __future__ import annotations

from dockerfiles import PATH, copy

from doit_oci.rules.dockerfile.model import CopyStep


def test_copy_step_json_round_trip() -> None:
    step = copy(
        3, "COPY --chmod=600 a b /c/", ("a", "b"), "/c", True, chmod=0o600, workdirs=("/w",)
    )
    assert CopyStep.from_json(step.to_json()) == step
    assert step.to_json() == {
        "where": f"{PATH}:3",
        "keyword": "COPY",
        "sources": ["a", "b"],
        "dest": "/c",
        "dest_is_dir": True,
        "chown": "",
        "chmod": 0o600,
        "workdirs": ["/w"],
        "created_by": "COPY --chmod=600 a b /c/",
    }
    owned = copy(4, "COPY a .", ("a",), "/w", True, workdirs=("/v", "/w"), workdir_users=("", "7"))
    assert owned.to_json()["workdir_users"] == ["", "7"]
    assert CopyStep.from_json(owned.to_json()) == owned
