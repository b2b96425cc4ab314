"""Shared settings of the fuzz tests (tests/test_fuzz_*.py).

``make test`` runs a small deterministic budget (hypothesis' ``derandomize``: the same
examples on every run, so CI cannot flake). ``make fuzz`` sets ``JAXINIT_FUZZ=<examples>``
for a long randomized run and ``JAXINIT_FUZZ_REPORT=<dir>`` to write each fuzzer's
outcome counts there as JSON. Every fuzzed call runs under :func:`watchdog`, so a call
that hangs ends the run naming its configuration instead of stalling it.
"""

from __future__ import annotations

import collections
import contextlib
import faulthandler
import json
import os
import pathlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, settings

BUDGET = int(os.environ.get("JAXINIT_FUZZ", "0"))
settings.register_profile(
    "jaxinit-ci", max_examples=200, derandomize=True, deadline=None, database=None,
    suppress_health_check=list(HealthCheck),
)
settings.register_profile(
    "jaxinit-fuzz", max_examples=max(BUDGET, 1), deadline=None, database=None,
    suppress_health_check=list(HealthCheck),
)
PROFILE = "jaxinit-fuzz" if BUDGET else "jaxinit-ci"


class Outcomes(collections.Counter):
    """Counts of a fuzzer's outcomes, written to JAXINIT_FUZZ_REPORT when set."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def dump(self) -> None:
        directory = os.environ.get("JAXINIT_FUZZ_REPORT")
        if directory:
            path = pathlib.Path(directory) / f"{self.name}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(dict(self), indent=1, sort_keys=True))


#: Seconds one fuzzed call may take (the slowest take about 3 s, compilation included, on
#: a loaded 2-core CPU). ``JAXINIT_FUZZ_WATCHDOG=<seconds>`` changes it.
WATCHDOG_S = float(os.environ.get("JAXINIT_FUZZ_WATCHDOG", "120"))
#: The exit status of a run the watchdog ended.
WATCHDOG_STATUS = 3


@contextlib.contextmanager
def watchdog(description: str, config: Any = None, seconds: float | None = None
             ) -> Iterator[None]:
    """Ends the process if the block runs past `seconds`, naming `description`.

    A call stuck in a compiled program cannot be interrupted from Python, so a timer
    thread (XLA releases the GIL while it compiles and runs) suspends pytest's output
    capture (`config` is pytest's config, as pytest-timeout does), writes ``fuzz
    watchdog: <description> ran past N s`` and every thread's stack to stderr, also to
    ``hang.txt`` in JAXINIT_FUZZ_REPORT when set, and exits with :data:`WATCHDOG_STATUS`.
    faulthandler ends the process 30 s later should the thread never get the GIL.
    """
    limit = WATCHDOG_S if seconds is None else seconds
    message = f"fuzz watchdog: {description} ran past {limit:g} s"

    def expire() -> None:
        directory = os.environ.get("JAXINIT_FUZZ_REPORT")
        if directory:
            path = pathlib.Path(directory) / "hang.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(message + "\n")
        capture = config.pluginmanager.getplugin("capturemanager") if config else None
        if capture is not None:
            capture.suspend_global_capture(in_=True)
        sys.stderr.write(f"\n{message}\n")
        sys.stderr.flush()
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()
        os._exit(WATCHDOG_STATUS)

    timer = threading.Timer(limit, expire)
    timer.daemon = True
    timer.start()
    faulthandler.dump_traceback_later(limit + 30, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        timer.cancel()
