"""doit's side of the build: the one module (with the plugin and dodo.py) that imports doit.

It gives doit our file check (a digest cache behind mtime and size), our reporter (one
line per failure, the summary table, the timing line), DOIT_CONFIG, and the task creators
of the ways in: ``image_tasks`` for a plan, ``rules_tasks`` for Python rules. The task
dicts themselves are made by rules.graph and rules.publish from what ``DOIT`` gives them.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn

from doit.dependency import FileChangedChecker
from doit.exceptions import TaskFailed
from doit.reporter import ConsoleReporter
from doit.tools import config_changed

from doit_oci.registry.errors import RegistryError
from doit_oci.rules import report
from doit_oci.rules.build import load_build
from doit_oci.rules.digests import DigestCache
from doit_oci.rules.errors import UserError, os_error
from doit_oci.rules.flags import DEFAULT_PLAN, HelpWanted, cache_dir_from, help_text
from doit_oci.rules.globals import PROCESS
from doit_oci.rules.graph import Doit, TaskDict, Work
from doit_oci.rules.names import OPTION_TASKS, TaskName
from doit_oci.rules.options import Options, read_options
from doit_oci.rules.progress import say
from doit_oci.rules.publish import Extra, build_tasks
from doit_oci.rules.steps.run import Run
from doit_oci.rules.units import Build, state_dir
from doit_oci.rules.workspace import lock_workspace, stop_on_sigterm

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


@dataclass(frozen=True)
class Made:
    """The tasks one creator made: its run, its group task and its prefix."""

    run: Run
    group: str
    prefix: str


class Reporter(ConsoleReporter):
    """doit's console report, with our failures as one line each and no traceback, and
    the summary table and a timing line per step at the end of a run that did something."""

    desc = "doit-oci: executed tasks, one line per failure, timings"

    def __init__(self, outstream: Any, options: Any) -> None:
        super().__init__(outstream, options)
        self._started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.durations: dict[str, float] = {}  # task -> seconds, for the tasks that ran
        self.failed: set[str] = set()
        self._selected: list[str] = []

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
            spent = time.monotonic() - started
            step = TaskName.parse(task.name).timed_step
            self.seconds[step] = self.seconds.get(step, 0.0) + spent
            self.durations[task.name] = spent

    def add_success(self, task: Any) -> None:
        self._stop(task)

    def add_failure(self, task: Any, fail: Any) -> None:
        self._stop(task)
        self.failed.add(task.name)
        message = fail.message if isinstance(fail, TaskFailed) else ""
        if message.startswith(_FAILED_MARK):
            self.failures.append({"task": task, "exception": fail, "ours": True})
            say(f"error: {message[len(_FAILED_MARK) :]}")
            return
        super().add_failure(task, fail)

    def initialize(self, tasks: Any, selected_tasks: Any) -> None:
        super().initialize(tasks, selected_tasks)
        # what the run asked for, with what it depends on: a plan's table is printed when
        # its group task is among them (also through an aggregate such as build_images)
        wanted: set[str] = set()
        todo = list(selected_tasks or [])
        while todo:
            name = todo.pop()
            if name in wanted:
                continue
            wanted.add(name)
            task = tasks.get(name) if isinstance(tasks, dict) else None
            todo.extend(getattr(task, "task_dep", ()) or ())
        self._selected = sorted(wanted)

    def complete_run(self) -> None:
        self.failures: list[dict[str, Any]] = [f for f in self.failures if not f.get("ours")]
        super().complete_run()
        for made in PROCESS.runs:
            if not isinstance(made, Made) or made.group not in self._selected:
                continue
            try:
                table = report.summary_table(made.run, made.prefix, self.durations, self.failed)
            except Exception as exc:  # a summary must not fail a build
                table = f"warning: no summary: {exc}\n"
            sys.stderr.write(table)
        sys.stderr.write(report.hashed_line(PROCESS.hashed))
        sys.stderr.write(report.timing_line(PROCESS.created_seconds, self.seconds))


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


def action(work: Work) -> Callable[[], TaskFailed | None]:
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


DOIT = Doit(action=action, changed=config_changed)


def stop(exc: UserError) -> NoReturn:
    """A user's mistake found before any task runs (reading dodo.py, a plan, options):
    one line of the same form as a task's, ``error: ...``, and exit 1, the same code as a
    failed task, whichever way in found it. Nothing has been written yet."""
    sys.stderr.write(f"error: {exc}\n")
    sys.stderr.flush()
    raise SystemExit(1)


def tasks_taking_options(group: str, prefix: str, more: Sequence[str] = ()) -> tuple[str, ...]:
    """The tasks whose options on the command line make the build's options."""
    # the plain housekeeping tasks cover every plan: their options are every plan's
    plain = OPTION_TASKS if prefix else ()
    return (group, *(f"{prefix}{task}" for task in OPTION_TASKS), *plain, *more)


def _every_run() -> list[Run]:
    """The runs of every task creator of this process (all of them, once tasks run)."""
    return [made.run for made in PROCESS.runs if isinstance(made, Made)]


def make_tasks(
    options: Callable[[], Options],
    build: Callable[[Options], Build],
    group: str,
    prefix: str,
    extra: Callable[[Run], Extra] = lambda run: Extra(),
    environ: Mapping[str, str] | None = None,
) -> list[TaskDict]:
    """The one way from options to tasks, for every way in: read the options, make the
    build (a user's mistake stops doit with one line), take the workspace's lock, make
    the run and its tasks, and remember them for the reporter."""
    started = time.monotonic()
    stop_on_sigterm()
    try:
        made = build(options())
    except HelpWanted as wanted:
        sys.stdout.write(help_text(wanted.task))
        raise SystemExit(0) from None
    except UserError as exc:
        stop(exc)
    lock_workspace(made, sys.argv[1:])
    run = Run(made, os.environ if environ is None else environ)
    everyone = None
    if not PROCESS.housekeeping_given:
        PROCESS.housekeeping_given = True
        everyone = _every_run
    try:
        tasks = list(build_tasks(DOIT, run, group, prefix, extra(run), everyone, _every_run))
    except UserError as exc:
        stop(exc)
    PROCESS.runs.append(Made(run, group, prefix))
    PROCESS.created_seconds += time.monotonic() - started
    return tasks


def image_tasks(
    plan: str | None = None,
    group: str = "build_images",
    prefix: str = "",
    environ: Mapping[str, str] | None = None,
    option_tasks: Sequence[str] = (),
) -> Callable[[], Iterator[TaskDict]]:
    """A doit task creator for a dodo.py: ``task_build_images = image_tasks("plans/x.yaml")``.

    Options come from the command line after ``group`` (or a housekeeping task) and from
    the environment, read when doit creates the tasks; paths are relative to doit's
    working directory.
    """

    def create() -> Iterator[TaskDict]:
        env = os.environ if environ is None else environ

        def options() -> Options:
            read = read_options(
                sys.argv[1:],
                env,
                tasks_taking_options(group, prefix, option_tasks),
                default_plan=plan or DEFAULT_PLAN,
            )
            return replace(read, scope=prefix.rstrip(".:"))

        def build(options: Options) -> Build:
            return load_build(options, Path.cwd(), env)

        yield from make_tasks(options, build, group, prefix, environ=env)

    create.__doc__ = "build the plan's images into the OCI image layout out/oci"
    return create
