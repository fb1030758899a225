"""Dockerfile -> image spec, as BuildKit reads and runs a COPY-only Dockerfile.

Two steps, because the second needs the base image's config (its ENV and WORKDIR take
part in expansion) and the first must not:

- ``read.read_dockerfile`` + ``stages.select_chain``: the instructions (logical lines
  with their line numbers), parser directives, validation, global ARGs and FROM lines
  expanded, and the chain of stages that builds the target. It tells how many layers the
  image gets, which is what the task graph needs, without building anything.
- ``evaluate.evaluate``: runs the chain's instructions on the base config as BuildKit does,
  one handler per instruction, giving a ``model.ImageSpec``.

``model`` holds the data, ``forms`` the argument forms of instructions (flags, exec form,
ARG words). Callers import from the submodules; this package exports nothing itself.
"""
