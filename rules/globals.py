"""The one home for what a doit process must hold globally (as doit's own doit/globals.py).

doit calls our code at moments we do not choose: it imports dodo.py (Python rules are
declared then, one call each), calls the task creators, makes a reporter of our class
and forks workers. What has to outlive one of those calls lives here, and nowhere else:

- ``declared``: the Python rules dodo.py declared, in order, for the task creator that
  turns them into tasks (rules.api collects them; rules.ruleset reads them);
- ``runs``: the build of every task creator that ran, with its group and prefix, for the
  reporter's summary table at the end of the run;
- ``rules_tasks_given``: whether the tasks of the declared rules were given to doit
  already (every rule is a task creator; the first one called gives them all);
- ``housekeeping_given``: whether the housekeeping tasks under their plain names (over
  every plan) were made already (by the first task creator);
- ``lock``: the open file whose flock makes this process the one run of its workspace;
- ``created_seconds``: how long making the tasks took, for the timing line;
- ``hashed``: path -> times this process hashed a file whose stat changed (the digest
  cache counts, the reporter prints);
- ``inherited``: SQLite connections a forked worker inherited, kept untouched (SQLite
  forbids using, even closing, them in the child; the garbage collector would close them);
- ``mode``: the run's ``--progress`` mode once known (tty, plain or json; "" before);
- ``hub``: where events and spans go to be shown and exported in order (rules.hub), made by
  the reporter before doit forks its workers, who inherit it; None when there is none;
- ``task``, ``image``: the task this process runs now, and its image (for progress);
- ``telemetry``: the run's traces (rules.telemetry) when they are sent, else None;
- ``started_ns``: when this process began making tasks (the run's span starts then).

Every other module is free of module-level mutable state (tests/test_architecture.py).
Tests that need a clean process call ``PROCESS.reset()``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import IO, Any


@dataclass
class Process:
    declared: list[Any] = field(default_factory=list)
    runs: list[Any] = field(default_factory=list)
    rules_tasks_given: bool = False
    housekeeping_given: bool = False
    lock: IO[str] | None = None
    created_seconds: float = 0.0
    hashed: dict[str, int] = field(default_factory=dict)
    inherited: list[sqlite3.Connection] = field(default_factory=list)
    mode: str = ""
    hub: Any = None
    task: str = ""
    image: str = ""
    telemetry: Any = None
    started_ns: int = 0

    def reset(self) -> None:
        """Forget the rules, runs and counts (the lock and connections are kept)."""
        self.declared.clear()
        self.runs.clear()
        self.rules_tasks_given = False
        self.housekeeping_given = False
        self.created_seconds = 0.0
        self.hashed.clear()


PROCESS = Process()
