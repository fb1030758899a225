"""doit's side of the build: the one module (with the plugin and dodo.py) that imports doit.

It gives doit our file check (a digest cache behind mtime and size), our reporter (one
line per failure, the summary table, the timing line), DOIT_CONFIG, and the task creators
of the ways in: ``image_tasks`` for a plan, ``rules_tasks`` for Python rules. The task
dicts themselves are made by rules.graph and rules.publish from what ``DOIT`` gives them.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from doit.dependency import FileChangedChecker
from doit.exceptions import TaskFailed
from doit.globals import Globals
from doit.reporter import ConsoleReporter
from doit.tools import config_changed

from doit_oci.registry.errors import RegistryError
from doit_oci.rules import display, report, telemetry
from doit_oci.rules.build import load_build
from doit_oci.rules.digests import DigestCache
from doit_oci.rules.errors import UserError, os_error
from doit_oci.rules.events import ErrorEvent, LogEvent, TaskStarted
from doit_oci.rules.flags import DEFAULT_PLAN, HelpWanted, cache_dir_from, help_text
from doit_oci.rules.globals import PROCESS
from doit_oci.rules.graph import Doit, TaskDict, Work
from doit_oci.rules.hub import Hub
from doit_oci.rules.names import OPTION_TASKS, TaskName, names_step
from doit_oci.rules.options import Options, read_options
from doit_oci.rules.progress import emit
from doit_oci.rules.publish import Extra, build_tasks
from doit_oci.rules.steps.platforms import every_platform
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


class _Action:
    """Our python-action: one line for a user's mistake, never a traceback; the task's
    start event and trace span, from the process that runs it (doit gives it ``task``)."""

    def __init__(self, work: Work) -> None:
        self.work = work

    def __call__(self, task: Any) -> TaskFailed | None:
        info = report.describe(task.name)
        PROCESS.task, PROCESS.image = task.name, info.image
        emit(TaskStarted(task.name, info.step, info.image, info.platform))
        try:
            with telemetry.task_span(task.name, info.attributes()) as span:
                failure = self._run()
                if failure is not None:
                    span.fail(failure.message[len(_FAILED_MARK) :])
                elif PROCESS.telemetry is not None:
                    done, cached = report.made_by(task.name)
                    span.set("doit_oci.bytes", done)
                    span.set("doit_oci.cached", cached)
            return failure
        finally:
            PROCESS.task = PROCESS.image = ""

    def _run(self) -> TaskFailed | None:
        try:
            self.work()
        except (UserError, RegistryError) as exc:
            return TaskFailed(_FAILED_MARK + str(exc))
        except OSError as exc:  # the machine's, not ours: a full disk, a missing permission
            return TaskFailed(_FAILED_MARK + os_error(exc))
        return None


def _ours(task: Any) -> bool:
    return any(isinstance(getattr(a, "py_callable", None), _Action) for a in task.actions)


class Reporter(ConsoleReporter):
    """doit's console report as events (rules.events), shown in the run's --progress mode
    by one hub (rules.hub) that the worker processes send theirs to as well: our failures
    as one line each and no traceback, and at the end the summary (the table of each plan
    asked for, and a timing line per step)."""

    desc = "doit-oci: executed tasks, one line per failure, timings"

    def __init__(self, outstream: Any, options: Any) -> None:
        super().__init__(outstream, options)
        self._started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.durations: dict[str, float] = {}  # task -> seconds, for the tasks that ran
        self.failed: set[str] = set()
        self._selected: list[str] = []
        self._said: set[str] = set()
        self._pending = ""  # a line of doit's own, until its end
        self.mode = PROCESS.mode = display.progress_mode()

    def write(self, text: str) -> None:
        """doit's own lines (its report of a failure that is not ours) as log events."""
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            emit(LogEvent(line, "stdout"))

    def skip_uptodate(self, task: Any) -> None:
        if self.mode == "json" and task.actions and not task.name.startswith("_"):
            info = report.describe(task.name)
            emit(report.finished(info, cached=True, uptodate=True))

    def skip_ignore(self, task: Any) -> None:
        pass

    def execute_task(self, task: Any) -> None:
        if not task.actions:
            return
        self._started[task.name] = time.monotonic()
        if not _ours(task) and not task.name.startswith("_"):
            info = report.describe(task.name)
            emit(TaskStarted(task.name, info.step, info.image, info.platform))

    def _stop(self, task: Any, ok: bool) -> None:
        started = self._started.pop(task.name, None)
        if started is None:
            return
        spent = time.monotonic() - started
        step = TaskName.parse(task.name).timed_step
        self.seconds[step] = self.seconds.get(step, 0.0) + spent
        self.durations[task.name] = spent
        info = report.describe(task.name)
        done, cached = report.made_by(task.name)
        emit(report.finished(info, round(spent, 3), done, cached, ok=ok))

    def add_success(self, task: Any) -> None:
        self._stop(task, ok=True)

    def add_failure(self, task: Any, fail: Any) -> None:
        self.failed.add(task.name)
        message = fail.message if isinstance(fail, TaskFailed) else ""
        if message.startswith(_FAILED_MARK):
            self.failures.append({"task": task, "exception": fail, "ours": True})
            text = message[len(_FAILED_MARK) :]
            if text not in self._said:  # the same cause failing several tasks: one line
                self._said.add(text)
                emit(ErrorEvent(text, task.name))
        else:
            emit(ErrorEvent(f"{fail.get_name()} - taskid:{task.name}", task.name))
            super().add_failure(task, fail)
        self._stop(task, ok=False)

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
        # the hub before doit forks its workers: they inherit it, and the run's trace
        sys.stdout.flush()
        sys.stderr.flush()
        shown = display.make_display(
            self.mode, display.fd_writer(1), display.fd_writer(2), display.terminal_width
        )
        PROCESS.hub = Hub(shown, telemetry.received, ticks=self.mode == "tty")
        started = PROCESS.started_ns or time.time_ns()
        telemetry.start(os.environ, started, PROCESS.created_seconds, list(selected_tasks or []))

    def complete_run(self) -> None:
        self.failures: list[dict[str, Any]] = [f for f in self.failures if not f.get("ours")]
        super().complete_run()
        if self._pending:
            self.write("\n")
        tables = [
            (made.run, made.prefix)
            for made in PROCESS.runs
            if isinstance(made, report.Made) and made.group in self._selected
        ]
        summary = report.summary(
            tables,
            self.durations,
            self.failed,
            PROCESS.created_seconds,
            self.seconds,
            PROCESS.hashed,
        )
        hub, PROCESS.hub = PROCESS.hub, None
        if hub is not None:
            hub.close()  # everything sent before is shown
            hub.display.close()
        telemetry.finish(not self.failed and not self.runtime_errors)
        if hub is not None:
            hub.display.show(summary)
        else:
            emit(summary)


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


def action(work: Work) -> Callable[[Any], TaskFailed | None]:
    """A doit python-action that turns a user's mistake into one line, not a traceback."""
    return _Action(work)


DOIT = Doit(action=action, changed=config_changed)


def stop(exc: UserError) -> NoReturn:
    """A user's mistake found before any task runs (reading dodo.py, a plan, options):
    one line of the same form as a task's, ``error: ...``, and exit 1, the same code as a
    failed task, whichever way in found it. Nothing has been written yet."""
    for line in str(exc).splitlines():
        emit(ErrorEvent(line))
    hub, PROCESS.hub = PROCESS.hub, None
    if hub is not None:  # found when doit saves its state: shown before the exit
        hub.close()
        hub.display.close()
        telemetry.finish(False)
    raise SystemExit(1)


def tasks_taking_options(group: str, prefix: str, more: Sequence[str] = ()) -> tuple[str, ...]:
    """The tasks whose options on the command line make the build's options (the plain
    housekeeping tasks cover every plan: their options are every plan's)."""
    plain = OPTION_TASKS if prefix else ()
    return (group, *(f"{prefix}{task}" for task in OPTION_TASKS), *plain, *more)


def _every_run() -> list[Run]:
    """The runs of every task creator of this process (all of them, once tasks run)."""
    return [made.run for made in PROCESS.runs if isinstance(made, report.Made)]


def _guard_the_state() -> None:
    """doit saves its state when a run ends; a full disk there must be one line, not a
    traceback of doit's own (what finished is built again by the next run)."""
    manager = Globals.dep_manager
    if manager is None or getattr(manager, "doit_oci_guarded", False):
        return
    close = manager.close

    def guarded() -> None:
        try:
            close()
        except (sqlite3.Error, OSError) as exc:
            stop(
                UserError(
                    f"doit's state could not be saved ({exc})",
                    str(getattr(manager.backend, "name", "") or "the doit database"),
                    "free some space and run again: what finished is made again",
                )
            )

    manager.close = guarded
    manager.doit_oci_guarded = True


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
    PROCESS.started_ns = PROCESS.started_ns or time.time_ns()
    PROCESS.mode = PROCESS.mode or display.progress_mode()
    stop_on_sigterm()
    try:
        chosen = options()
        if any(names_step(word, "lock") for word in sys.argv[1:]):
            chosen = replace(chosen, locked=False)  # `doit lock` is how a lock is made
        if chosen.all_platforms:
            chosen = every_platform(chosen, build, os.environ if environ is None else environ)
        made = build(chosen)
    except HelpWanted as wanted:
        sys.stdout.write(help_text(wanted.task))
        raise SystemExit(0) from None
    except UserError as exc:
        stop(exc)
    lock_workspace(made, sys.argv[1:])
    _guard_the_state()
    run = Run(made, os.environ if environ is None else environ)
    everyone = None
    if not PROCESS.housekeeping_given:
        PROCESS.housekeeping_given = True
        everyone = _every_run
    try:
        tasks = list(build_tasks(DOIT, run, group, prefix, extra(run), everyone, _every_run))
    except UserError as exc:
        stop(exc)
    PROCESS.runs.append(report.Made(run, group, prefix))
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
