"""Task names, made and read in one place: ``[<prefix>]<step>[:<key>][.<layer>]``.

    make, make:linux_arm64             layout, status, gc, verify, push_index, lock
    base:gcr.io/x/base:1.2             a registry base (``@<os>_<arch>`` with platforms)
    parse:hello, translate:hello       image:hello@linux_arm64
    layer:hello.0                      the first layer of hello
    push:hello, save:hello-distroless  an output (an image and variant, every platform)
    load:hello                         an output's image of the platform to load
    registry:127.0.0.1:5000            the check before the first push to a registry

``<prefix>`` is what a dodo.py or a plan gave (``oci.``, ``docker.``), so that our tasks
never clash with a project's own.
"""

from __future__ import annotations

from dataclasses import dataclass

# the steps whose tasks take time, in the order a build runs them (for the timing line)
STEPS = (
    "make",
    "base",
    "parse",
    "translate",
    "layer",
    "image",
    "sbom",
    "layout",
    "upload",
    "push",
    "attach",
    "release",
    "save",
    "load",
)
# the tasks that take the build's options on the command line
OPTION_TASKS = ("status", "gc", "verify", "push_index", "load", "lock")


@dataclass(frozen=True)
class TaskName:
    step: str
    key: str = ""
    layer: int | None = None
    prefix: str = ""

    def __str__(self) -> str:
        text = self.prefix + self.step
        if self.key:
            text += f":{self.key}"
        if self.layer is not None:
            text += f".{self.layer}"
        return text

    @classmethod
    def parse(cls, text: str, prefix: str = "") -> TaskName:
        """The parts of a task name made with ``prefix`` (or of any other name: then its
        step is what comes before the first colon)."""
        body = text.removeprefix(prefix) if prefix else text
        step, _, key = body.partition(":")
        layer = None
        if step in ("layer", "upload") and "." in key:
            head, _, tail = key.rpartition(".")
            if tail.isdigit():
                key, layer = head, int(tail)
        return cls(step, key, layer, prefix if body != text else "")

    @property
    def timed_step(self) -> str:
        """The step a run's timing line counts this task under (a prefix ignored)."""
        for step in STEPS:
            if self.step.endswith(step):
                return step
        return self.step


def names_step(word: str, step: str) -> bool:
    """Whether a word of the command line names the task ``step`` (``lock``, ``oci.lock``)."""
    return word == step or word.endswith(f".{step}")
