"""The one exception a user's mistake raises: what went wrong, where, and what to do."""

from __future__ import annotations

import errno
from collections.abc import Sequence


class UserError(Exception):
    """A mistake in the user's input, reported as one line without a traceback.

    ``where`` is a location such as ``plans/images.yaml:12`` or an image reference;
    ``fix`` says what to do about it.
    """

    def __init__(self, what: str, where: str = "", fix: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.where = where
        self.fix = fix

    def at(self, where: str) -> UserError:
        """The same error, located at ``where`` unless it already has a location."""
        if self.where:
            return self
        return UserError(self.what, where, self.fix)

    def __str__(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        return f"{text}; {self.fix}" if self.fix else text


class UserErrors(UserError):
    """Several mistakes found at once (one per base of a build...): one line each."""

    def __init__(self, errors: Sequence[UserError]) -> None:
        super().__init__(errors[0].what, errors[0].where, errors[0].fix)
        self.errors = tuple(errors)

    def __str__(self) -> str:
        return "\n".join(str(error) for error in self.errors)


def os_error(exc: OSError) -> str:
    """One line for an error of the file system, with what to do about the usual ones."""
    where = f"{exc.filename}: " if exc.filename else ""
    what = exc.strerror or str(exc)
    fixes = {
        errno.ENOSPC: "free some space there, or put the state elsewhere with --cache-dir",
        errno.EDQUOT: "free some space there, or put the state elsewhere with --cache-dir",
        errno.EACCES: "check the permissions of the workspace and of out/",
        errno.EROFS: "the workspace must be writable",
    }
    fix = fixes.get(exc.errno or 0, "check the file system and run the build again")
    return f"{where}{what}; {fix}"
