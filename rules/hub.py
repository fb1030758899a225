"""The one place a run's events are shown, whichever process they come from.

doit runs tasks in worker processes it forks after the reporter has started. Before that
fork the reporter makes a ``Hub``: a Unix socket pair of the SEQPACKET kind, whose every
``send`` is one whole message, never split or mixed with another's, however many
processes and threads send at once, and received in the order sent. The workers inherit
it; each event (and each finished trace span, see rules.telemetry) is pickled into one
message. A thread of the parent receives them in order and hands events to the run's
display, and anything else to ``other``. So the JSON stream is written by one writer, the
tty block is drawn by one owner, and an event a worker sends before its task ends comes
before the reporter's "task finished", which the parent sends once doit told it.

Only the process that made the hub reads it and closes it; the workers only send.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import threading
from collections.abc import Callable
from typing import Any

from doit_oci.rules.display import Display
from doit_oci.rules.events import KINDS

BIGGEST = 1 << 20  # bytes of the largest message received whole
TICK = 0.2  # seconds between two ticks of the display, when it wants them
_END = b"end"


class Hub:
    def __init__(self, display: Display, other: Callable[[Any], None], ticks: bool = False) -> None:
        self.display = display
        self.other = other
        self._pid = os.getpid()
        self._receiver, self._sender = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        if ticks:
            self._receiver.settimeout(TICK)
        self._thread = threading.Thread(target=self._loop, name="doit-oci-events", daemon=True)
        self._thread.start()

    def send(self, message: object) -> bool:
        """Hand ``message`` to the parent's thread; False when it cannot go (too big, or
        the hub is closed): the caller shows it itself."""
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        if len(data) > BIGGEST:
            return False
        try:
            self._sender.send(data)
        except OSError:
            return False
        return True

    def _loop(self) -> None:
        while True:
            try:
                data = self._receiver.recv(BIGGEST)
            except TimeoutError:
                self._safely(self.display.tick, None)
                continue
            except OSError:
                return
            if data == _END or not data:
                return
            message = pickle.loads(data)
            if isinstance(message, KINDS):
                self._safely(self.display.show, message)
            else:
                self._safely(self.other, message)

    def _safely(self, work: Callable[..., object], message: object) -> None:
        # a display or exporter that fails must not stop the others, nor the build
        with contextlib.suppress(Exception):
            work() if message is None else work(message)

    def close(self) -> None:
        """Show everything sent so far, then stop (in the process that made the hub)."""
        if os.getpid() != self._pid:
            return
        with contextlib.suppress(OSError):
            self._sender.send(_END)
        self._thread.join()
        self._receiver.close()
        self._sender.close()
