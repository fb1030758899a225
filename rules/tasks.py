"""The build as doit tasks: one task per image and step, each declaring what it reads and writes.

This is, with dodo.py and the plugin entry point, the only module that imports doit.

    make[:<platform>]   make the plan's targets for a platform (up to date when `make -q` is)
    parse:<image>       Dockerfile + base config -> copies.json, config.json
    translate:<image>   COPY sources -> layer-K.inputs.json (what each layer holds), tree.json
    layer:<image>.<K>   one layer blob per COPY/ADD, streamed into out/oci
    image:<image>       config and manifest -> out/oci, image.json
    layout              out/oci/index.json names every image <name>:<tag>
    build_images        all of the above for the plan's images

``<image>`` is ``<name>@<os>_<arch>`` when several platforms are built.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from doit.dependency import FileChangedChecker
from doit.exceptions import InvalidTask, TaskFailed
from doit.reporter import ConsoleReporter
from doit.tools import config_changed

from doit_oci.registry.errors import RegistryError
from doit_oci.registry.oci import Platform
from doit_oci.registry.push import destinations
from doit_oci.rules.build import Build, Output, Unit, load_build, state_dir
from doit_oci.rules.digests import DigestCache
from doit_oci.rules.dockerfile import build_arg_names
from doit_oci.rules.errors import UserError
from doit_oci.rules.make import make_command, make_environment, make_is_up_to_date
from doit_oci.rules.options import DEFAULT_PLAN, OPTIONS, cache_dir_from, read_options
from doit_oci.rules.plan import platform_variables
from doit_oci.rules.steps import Steps

SPEC_VERSION = 3  # bump when a record's format or meaning changes, to rebuild them all

TaskDict = dict[str, Any]
_FAILED_MARK = "doit-oci: "


class DigestChecker(FileChangedChecker):
    """doit's file check: unchanged (mtime, size) means unchanged; otherwise the content
    digest decides, and digests are cached so a touched file is hashed once, not on
    every run as doit's md5 checker does."""

    def __init__(self) -> None:
        self._cache: DigestCache | None = None

    @property
    def cache(self) -> DigestCache:
        if self._cache is None:
            state = state_dir(Path.cwd(), cache_dir_from(sys.argv[1:], os.environ))
            self._cache = DigestCache(state / "cache" / "digests.sqlite")
        return self._cache

    def check_modified(self, file_path: str, file_stat: os.stat_result, state: Any) -> bool:
        mtime_ns, size, digest = state
        if file_stat.st_mtime_ns == mtime_ns and file_stat.st_size == size:
            return False
        if file_stat.st_size != size:
            return True
        return bool(digest != self.cache.digest(file_path, file_stat))

    def get_state(self, dep: str, current_state: Any) -> Any:
        st = os.stat(dep)
        if current_state and list(current_state[:2]) == [st.st_mtime_ns, st.st_size]:
            return None
        return [st.st_mtime_ns, st.st_size, self.cache.digest(dep, st)]


STEPS = ("make", "base", "parse", "translate", "layer", "image", "layout", "push", "save")
_created: dict[str, float] = {}  # seconds spent making the tasks (reading plan and files)
_made: dict[str, tuple[Steps, str, str]] = {}  # the build of this process: steps, group, prefix


def step_of(task_name: str) -> str:
    """``layer:pilot.0`` -> ``layer``; a prefix chosen by the user is skipped."""
    head = task_name.split(":", 1)[0]
    for step in STEPS:
        if head.endswith(step):
            return step
    return head


class Reporter(ConsoleReporter):
    """doit's console report, with our failures as one line each and no traceback, and
    a timing line per step at the end of a run that did something, like the seed's."""

    desc = "doit-oci: executed tasks, one line per failure, timings"

    def __init__(self, outstream: Any, options: Any) -> None:
        super().__init__(outstream, options)
        self._started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.durations: dict[str, float] = {}  # task -> seconds, for the tasks that ran

    def skip_uptodate(self, task: Any) -> None:
        pass

    def skip_ignore(self, task: Any) -> None:
        pass

    def execute_task(self, task: Any) -> None:
        super().execute_task(task)
        if task.actions:
            self._started[task.name] = time.monotonic()

    def _stop(self, task: Any) -> None:
        started = self._started.pop(task.name, None)
        if started is not None:
            step = step_of(task.name)
            spent = time.monotonic() - started
            self.seconds[step] = self.seconds.get(step, 0.0) + spent
            self.durations[task.name] = spent

    def add_success(self, task: Any) -> None:
        self._stop(task)

    def add_failure(self, task: Any, fail: Any) -> None:
        self._stop(task)
        message = fail.message if isinstance(fail, TaskFailed) else ""
        if message.startswith(_FAILED_MARK):
            self.failures.append({"task": task, "exception": fail, "ours": True})
            sys.stderr.write(f"error: {message[len(_FAILED_MARK) :]}\n")
            return
        super().add_failure(task, fail)

    def initialize(self, tasks: Any, selected_tasks: Any) -> None:
        super().initialize(tasks, selected_tasks)
        made = _made.get("build")
        self._summarise = made is not None and made[1] in (selected_tasks or [])

    def complete_run(self) -> None:
        self.failures: list[dict[str, Any]] = [f for f in self.failures if not f.get("ours")]
        super().complete_run()
        made = _made.get("build")
        if made is not None and getattr(self, "_summarise", False) and not self.failures:
            try:
                sys.stderr.write(summary_table(made[0], made[2], self.durations))
            except Exception as exc:  # a summary must not fail a build
                sys.stderr.write(f"warning: no summary: {exc}\n")
        hashed = DigestCache.hashed_here
        if hashed:
            sys.stderr.write(
                f"hashed {len(hashed)} files whose stat changed ({sum(hashed.values())} times)\n"
            )
        if any(step in self.seconds for step in STEPS):
            parts = [f"plan {_created.get('seconds', 0.0):.2f}s"] + [
                f"{step} {self.seconds[step]:.2f}s" for step in STEPS if step in self.seconds
            ]
            sys.stderr.write(f"timing: {', '.join(parts)}\n")


def summary_table(steps: Steps, prefix: str, durations: Mapping[str, float]) -> str:
    """The end-of-run table: per image, layers rebuilt and reused, bytes uploaded, digest
    and the time its tasks took in this run."""
    build = steps.build
    rows = [("image", "layers built/cached/reused", "uploaded", "digest", "time")]
    for output in build.outputs:
        units = build.units_of(output)
        keys = set(output.keys)
        rebuilt = cached = total = 0
        spent = 0.0
        for task, seconds in durations.items():
            head, _, rest = task.removeprefix(prefix).partition(":")
            key = rest.rsplit(".", 1)[0] if head == "layer" else rest
            if key in keys or (head in ("push", "save") and rest == output.label):
                spent += seconds
                if head == "layer":
                    layer = build.unit(key).layer(int(rest.rsplit(".", 1)[1]))
                    from_cache = bool(json.loads(layer.read_text()).get("cached"))
                    cached += from_cache
                    rebuilt += not from_cache
        total = sum(unit.layer_count for unit in units)
        record = steps.push_record(output)
        uploaded = 0
        if record.exists():
            uploaded = (
                int(json.loads(record.read_text()).get("uploaded_bytes", 0))
                if any(task.removeprefix(prefix) == f"push:{output.label}" for task in durations)
                else 0
            )
        try:
            digest = steps.image_descriptor(output).digest
        except OSError:
            digest = "(not built)"
        reused = total - rebuilt - cached
        rows.append(
            (output.label, f"{rebuilt}/{cached}/{reused}", _size(uploaded), digest, f"{spent:.2f}s")
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        + "\n"
        for row in rows
    )


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 100_000 else f"{count} B"


def doit_config(
    dep_file: str = ".doit.db", default_task: str | None = "build_images"
) -> dict[str, Any]:
    """DOIT_CONFIG for a dodo.py that builds images: state in the workspace, our checker,
    tasks in parallel processes."""
    cache_dir = cache_dir_from(sys.argv[1:], os.environ)
    if cache_dir and dep_file == ".doit.db":
        dep_file = str(state_dir(Path.cwd(), cache_dir) / "doit.db")
        Path(dep_file).parent.mkdir(parents=True, exist_ok=True)
    return {
        "backend": "sqlite3",
        "dep_file": dep_file,
        "check_file_uptodate": DigestChecker,
        "reporter": Reporter,
        # with no default task, `doit` alone runs every task
        **({"default_tasks": [default_task]} if default_task else {}),
        # independent tasks at once (make beside the base images' resolution, layers of
        # different images...): as many as there are cores, up to 4; `doit -n 1` for one
        "num_process": max(1, min(4, os.cpu_count() or 1)),
        "par_type": "process",
    }


class Check:
    """An up-to-date check that doit shows by what it checks (`doit info <task>`)."""

    def __init__(self, description: str, check: Callable[[], bool]) -> None:
        self.description = description
        self.check = check

    def __call__(self) -> bool:
        return self.check()

    def __repr__(self) -> str:
        return self.description

    __str__ = __repr__


def invalid(exc: UserError) -> InvalidTask:
    """doit's way to stop before any task with one line, for a mistake found making tasks."""
    return InvalidTask(str(exc))


def values_changed(values: Any) -> Any:
    """An up-to-date check: the task runs again when ``values`` differ from last time."""
    return config_changed(values)


def _action(work: Callable[[], None]) -> Callable[[], TaskFailed | None]:
    """A doit python-action that turns a user's mistake into one line, not a traceback."""

    def run() -> TaskFailed | None:
        try:
            work()
        except (UserError, RegistryError) as exc:
            return TaskFailed(_FAILED_MARK + str(exc))
        except OSError as exc:  # the machine's, not ours: a full disk, a missing permission
            return TaskFailed(_FAILED_MARK + os_error(exc))
        return None

    return run


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


COMMANDS_THAT_CHANGE_NOTHING = ("list", "info", "help", "dumpdb", "strace", "tabcompletion")
_held: dict[str, Any] = {}


def lock_workspace(build: Build, argv: Sequence[str]) -> None:
    """One run at a time in a workspace: a second one waits for the first, saying so (its
    out/ and doit's database are not made for two writers). `doit list` and other commands
    that only read take no lock."""
    words = [w for w in argv if not w.startswith("-")]
    if words and words[0] in COMMANDS_THAT_CHANGE_NOTHING:
        return
    if "lock" in _held:
        return
    # beside doit's database (.doit.db.lock), not in out/, which a no-op run leaves alone
    database = build.state / "doit.db" if build.options.cache_dir else build.workspace / ".doit.db"
    database.parent.mkdir(parents=True, exist_ok=True)
    handle = open(f"{database}.lock", "a+")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        other = handle.read().strip() or "another doit"
        sys.stderr.write(f"waiting: another run ({other}) is building in {build.workspace}\n")
        fcntl.flock(handle, fcntl.LOCK_EX)
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    _held["lock"] = handle


def task_params(plan: str) -> list[dict[str, Any]]:
    """doit parameters for a task that takes the build's options."""
    params = []
    for option in OPTIONS:
        param: dict[str, Any] = {"name": option.name, "long": option.flag, "help": option.help}
        if option.kind == "list":
            param.update(type=list, default=[])
        elif option.kind == "bool":
            param.update(type=bool, default=False)
        else:
            param.update(type=str, default=plan if option.name == "plan" else "")
        params.append(param)
    return params


def build_tasks(
    build: Build,
    group: str = "build_images",
    prefix: str = "",
    environ: Mapping[str, str] | None = None,
) -> Iterator[TaskDict]:
    """The task dicts of ``build``; ``prefix`` is put before every task name. With
    --no-cache every task that does something runs, whatever doit knows."""
    for task in _build_tasks(build, group, prefix, environ):
        if build.options.no_cache and task.get("actions"):
            task["uptodate"] = [*task.get("uptodate", []), False]
        yield task


def _build_tasks(
    build: Build,
    group: str,
    prefix: str,
    environ: Mapping[str, str] | None,
) -> Iterator[TaskDict]:
    steps = Steps(build, os.environ if environ is None else environ)
    _made["build"] = (steps, group, prefix)
    options = build.options
    several = len(options.platforms) > 1

    def name(step: str, unit: Unit | None = None, index: int | None = None) -> str:
        text = f"{prefix}{step}"
        if unit is not None:
            text += f":{unit.key}"
        if index is not None:
            text += f".{index}"
        return text

    make_tasks: dict[Platform, str] = {}
    for platform, goals in build.make_goals:
        task_name = f"{prefix}make" + (f":{platform.slug}" if several else "")
        make_tasks[platform] = task_name
        yield _make_task(task_name, build.workspace, platform, goals)

    def declared(unit: Unit) -> set[str]:
        return build_arg_names(unit.chain.dockerfile)

    base_tasks: dict[Path, str] = {}
    for unit in build.units:
        if unit.base_ref and unit.base_record not in base_tasks:
            task_name = f"{prefix}base:{unit.base_ref}" + (
                f"@{unit.platform.slug}" if several else ""
            )
            base_tasks[unit.base_record] = task_name
            yield {
                "basename": task_name,
                "doc": f"resolve the registry base {unit.base_ref} for {unit.platform}",
                "actions": [_action(partial(steps.resolve_base, unit))],
                "targets": [str(unit.base_record)],
                "uptodate": [
                    config_changed({"push": options.push, "version": SPEC_VERSION}),
                    Check(
                        f"{unit.base_ref} still points at the manifest resolved before",
                        partial(steps.base_uptodate, unit),
                    ),
                ],
                "clean": True,
            }

    for unit in build.units:
        base = build.unit(unit.base_key) if unit.base_key else None
        base_deps = [str(base.image_record)] if base else []
        if unit.base_ref:
            base_deps = [str(unit.base_record)]
        shown = f"{unit.name} ({unit.platform})"
        yield {
            "basename": name("parse", unit),
            "doc": f"parse the Dockerfile of {shown}",
            "actions": [_action(partial(steps.parse, unit))],
            "file_dep": [str(unit.image.dockerfile), *base_deps],
            "targets": [str(unit.copies), str(unit.config)],
            "uptodate": [
                config_changed(
                    {
                        # only the build args its Dockerfile declares can change it
                        "args": [(k, v) for k, v in unit.build_args if k in declared(unit)],
                        "version": SPEC_VERSION,
                        "chain": [s.index for s in unit.chain.stages],
                    }
                )
            ],
            "clean": True,
        }
        translate_deps = (
            [make_tasks[unit.platform]]
            if (unit.image.targets and unit.platform in make_tasks)
            else []
        )
        if base is not None:
            translate_deps.append(name("translate", base))
        yield {
            "basename": name("translate", unit),
            "doc": f"find the files each COPY of {shown} takes",
            "actions": [_action(partial(steps.translate, unit))],
            "file_dep": [str(unit.copies)],
            "task_dep": translate_deps,
            "targets": [str(unit.inputs(i)) for i in range(unit.layer_count)] + [str(unit.tree)],
            "uptodate": [
                Check(
                    "the files its COPYs take are as recorded (size, mtime, then content digest)",
                    partial(steps.translate_uptodate, unit),
                )
            ],
            "clean": True,
        }
        for index in range(unit.layer_count):
            yield {
                "basename": name("layer", unit, index),
                "doc": f"layer {index} of {shown}",
                "actions": [_action(partial(steps.layer, unit, index))],
                "file_dep": [str(unit.inputs(index))],
                "targets": [str(unit.layer(index))],
                "uptodate": [
                    config_changed(
                        {
                            "compression": options.layer_compression,
                            "epoch": options.epoch,
                            "version": SPEC_VERSION,
                            "cache": options.cache_repo,
                        }
                    ),
                    Check("its blob is in out/oci", partial(steps.layer_uptodate, unit, index)),
                ],
                "clean": True,
            }
        yield {
            "basename": name("image", unit),
            "doc": f"assemble the config and manifest of {shown}",
            "actions": [_action(partial(steps.image, unit))],
            "file_dep": [str(unit.config)]
            + [str(unit.layer(i)) for i in range(unit.layer_count)]
            + base_deps,
            "targets": [str(unit.image_record)],
            "uptodate": [
                config_changed({"epoch": options.epoch, "version": SPEC_VERSION}),
                Check(
                    "its manifest and config are in out/oci", partial(steps.image_uptodate, unit)
                ),
            ],
            "clean": True,
        }
    yield {
        "basename": name("layout"),
        "doc": "name the images <name>:<tag> in the OCI image layout out/oci",
        "actions": [_action(steps.write_layout)],
        "file_dep": [str(build.unit(key).image_record) for key in build.wanted],
        "targets": [str(steps.layout_record)],
        "uptodate": [Check("out/oci/index.json names every image as built", steps.layout_uptodate)],
    }
    push_tasks: dict[str, str] = {}  # unit key -> the push task of its output
    checks: list[str] = []
    if options.push and options.no_clobber:
        checks.append(name("no-clobber"))
        yield {
            "basename": checks[0],
            "doc": "refuse to push when a destination tag other than latest exists already",
            "actions": [_action(steps.check_clobber)],
            "verbosity": 2,
        }
    if options.push:
        # one request to each registry before the first push to it, so that a registry
        # that cannot be reached or refuses our login stops the run with one message,
        # not one per image; a setup task, so it runs only when something is pushed
        registries = sorted(
            {
                destination.registry
                for output in build.outputs
                for destination in destinations(options.hubs, output.name, output.tags)
            }
        )
        registry_checks = [name(f"registry:{registry}") for registry in registries]
        for registry, check in zip(registries, registry_checks, strict=True):
            yield {
                "basename": check,
                "doc": f"check that {registry} answers and accepts our credentials",
                "actions": [_action(partial(steps.check_registry, registry))],
                "verbosity": 2,
            }
        for output in build.outputs:
            units = build.units_of(output)
            targets = [
                f"{d.name}:{tag}"
                for d in destinations(options.hubs, output.name, output.tags)
                for tag in d.tags
            ]
            bases_pushed = {push_tasks[u.base_key] for u in units if u.base_key in push_tasks}
            task_name = name(f"push:{output.label}")
            push_tasks.update((key, task_name) for key in output.keys)
            yield {
                "basename": task_name,
                "doc": f"push {output.label} to {', '.join(targets)}",
                "actions": [_action(partial(steps.push, output))],
                "file_dep": [str(u.image_record) for u in units],
                "task_dep": [*checks, *sorted(bases_pushed)],
                "setup": registry_checks,
                "targets": [str(steps.push_record(output))],
                "uptodate": [config_changed({"to": targets, "version": SPEC_VERSION})],
                "verbosity": 2,
            }

    def report_status() -> None:
        rows = steps.status()
        width = max((len(label) for label, _, _ in rows), default=5)
        for label, digest, reasons in rows:
            if reasons:
                print(f"{label:<{width}}  out of date: {'; '.join(reasons)}")
            else:
                print(f"{label:<{width}}  up to date   {digest}")

    def command(step: str, doc: str, action: Callable[[], None]) -> TaskDict:
        """A task that builds nothing: it runs when asked for, and prints what it finds."""
        return {
            "basename": name(step),
            "doc": doc,
            "actions": [_action(action)],
            "verbosity": 2,
            "params": task_params(options.plan),
        }

    yield command(
        "status", "say which images are out of date and why (nothing is built)", report_status
    )

    def verify() -> None:
        damage = steps.verify()
        for line in damage:
            print(f"verify: {line}")
        if damage:
            raise UserError(
                f"{len(damage)} damaged or missing blobs in {steps.layout.root}",
                "verify",
                "run the build again: it makes them again",
            )
        print(f"verify: every blob of {steps.layout.root} matches its digest")

    yield command(
        "verify", "hash the content store again and report (and remove) damaged blobs", verify
    )

    def collect_garbage() -> None:
        removed, size, kept = steps.gc()
        print(f"gc: removed {removed} blobs ({_size(size)}), kept {kept}")

    yield command(
        "gc", "remove from the content store what no image of this build refers to", collect_garbage
    )
    index_tasks: list[str] = []
    if options.hubs and not options.platform_tags:
        for output in build.outputs:
            index_tasks.append(name(f"index:{output.label}"))

            def push_index(output: Output = output) -> None:
                for line in steps.push_index(output):
                    print(f"pushed the index {line}")

            yield {
                "basename": index_tasks[-1],
                "doc": f"make {output.label} for every platform from the <tag>-<arch> images",
                "actions": [_action(push_index)],
                "verbosity": 2,
            }
    yield {
        "basename": name("push_index"),
        "doc": "make each multi-platform image from what one machine per platform pushed"
        " with --platform-tags (reads manifests and configs, never a layer)",
        "actions": None,
        "task_dep": index_tasks,
        "params": task_params(options.plan),
    }
    save_tasks: list[str] = []
    if options.save:
        for output in build.outputs:
            save_tasks.append(name(f"save:{output.label}"))
            yield {
                "basename": save_tasks[-1],
                "doc": f"save {output.label} under out/release/docker",
                "actions": [_action(partial(steps.save, output))],
                "file_dep": [str(u.image_record) for u in build.units_of(output)],
                "targets": [str(p) for p in steps.save_paths(output).values()],
                "uptodate": [
                    config_changed(
                        {"tags": output.ref_names, "hubs": options.hubs, "version": SPEC_VERSION}
                    )
                ],
                "clean": True,
            }
    yield {
        "basename": group,
        "doc": "build the plan's images into the OCI image layout out/oci"
        + (" and push them" if options.push else ""),
        "actions": None,
        "task_dep": [name("layout"), *sorted(set(push_tasks.values())), *save_tasks],
        "params": task_params(options.plan),
    }


def _make_task(
    task_name: str, workspace: Path, platform: Platform, goals: tuple[str, ...]
) -> TaskDict:
    env = make_environment(os.environ, platform_variables(platform, workspace))

    def run() -> TaskFailed | None:
        started = time.monotonic()
        code = subprocess.call(make_command(goals), cwd=workspace, env=env)
        if code != 0:
            return TaskFailed(
                _FAILED_MARK + f"make failed with exit code {code} for {platform}"
                f" (goals: {' '.join(goals)}); see make's output above"
            )
        print(f"make for {platform}: {time.monotonic() - started:.1f}s", file=sys.stderr)
        return None

    return {
        "basename": task_name,
        "doc": f"make the plan's targets for {platform}",
        "actions": [run],
        "uptodate": [
            Check(
                "`make -q` says the targets are up to date",
                partial(make_is_up_to_date, goals, workspace, env),
            )
        ],
        "verbosity": 2,
    }


def stop_on_sigterm() -> None:
    """Make SIGTERM end a run the way doit's own finish does, so that it saves the state of
    what finished (the default handler would end the process with the whole run's state
    unsaved), and exit 143 without a traceback. Forked workers keep the default: their
    parent decides."""
    parent = os.getpid()

    def handler(signum: int, frame: Any) -> None:
        if os.getpid() != parent:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        sys.stderr.write("stopped by SIGTERM: what finished is kept, the next run does the rest\n")
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def image_tasks(
    plan: str | None = None,
    group: str = "build_images",
    prefix: str = "",
    environ: Mapping[str, str] | None = None,
    option_tasks: Sequence[str] = (),
) -> Callable[[], Iterator[TaskDict]]:
    """A doit task creator for a dodo.py: ``task_build_images = image_tasks("plans/x.yaml")``.

    Options come from the command line after ``group`` and from the environment, read
    when doit creates the tasks; paths are relative to doit's working directory.
    """

    def create() -> Iterator[TaskDict]:
        started = time.monotonic()
        stop_on_sigterm()
        env = os.environ if environ is None else environ
        try:
            # the tasks that take options
            ours = (
                group,
                *(f"{prefix}{t}" for t in ("gc", "status", "verify", "push_index")),
                *option_tasks,
            )
            options = read_options(sys.argv[1:], env, ours, default_plan=plan or DEFAULT_PLAN)
            options = replace(options, scope=prefix.rstrip(".:"))
            build = load_build(options, Path.cwd(), env)
        except UserError as exc:
            raise InvalidTask(str(exc)) from None
        lock_workspace(build, sys.argv[1:])
        tasks = list(build_tasks(build, group, prefix, env))
        _created["seconds"] = time.monotonic() - started
        yield from tasks

    create.__doc__ = "build the plan's images into the OCI image layout out/oci"
    return create
