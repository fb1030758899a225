"""The one exception a user's mistake raises: what went wrong, where, and what to do."""

from __future__ import annotations


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
