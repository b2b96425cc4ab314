"""Shared settings of the fuzz tests (tests/test_fuzz_*.py).

``make test`` runs a small deterministic budget (hypothesis' ``derandomize``: the same
examples on every run, so CI cannot flake). ``make fuzz`` sets ``JAXINIT_FUZZ=<examples>``
for a long randomized run and ``JAXINIT_FUZZ_REPORT=<dir>`` to write each fuzzer's
outcome counts there as JSON.
"""

from __future__ import annotations

import collections
import json
import os
import pathlib

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
