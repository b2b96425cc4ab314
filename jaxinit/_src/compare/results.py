"""The results of `jaxinit compare`: per scheme, every seed's curve and final metrics,
the signal through depth at initialization, and the significance verdict."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxinit._src.compare.stats import verdict as welch_verdict

FINALS = ("train_loss", "test_loss", "test_accuracy")


def diverged_at(curve: np.ndarray, final_loss: float) -> int | None:
    """The first step whose loss is non-finite, ``len(curve)`` when only the final loss
    is, or None: the rule of :func:`jaxinit.compare_model`."""
    bad = np.flatnonzero(~np.isfinite(curve))
    if bad.size:
        return int(bad[0])
    return None if math.isfinite(final_loss) else int(curve.size)


@dataclasses.dataclass(frozen=True, eq=False)
class SchemeRuns:
    """One scheme's runs: ``seeds`` training runs and the signal at initialization.

    Attributes:
      name, summary: the scheme.
      curves: float64 ``(seeds, steps)``, the training (batch) loss of every step.
      finals: metric -> float64 ``(seeds,)`` after the last step: ``train_loss`` (the
        whole training set), ``test_loss``, ``test_accuracy`` (and, for the built-in
        architectures, ``train_accuracy``).
      diverged: per seed, the first step whose loss is non-finite, or None.
      layers: the names of the layers of ``activation_std`` and ``gradient_std``.
      activation_std: per layer, the std of its activation at initialization (seed 0).
      gradient_std: per layer, the std of the loss gradient w.r.t. its output (seed 0).
      jacobian: for the built-in architectures, the singular values of
        d(last hidden)/d(input) at initialization: ``mean_sq``, ``spread``
        (std(s^2)/mean(s^2)), ``max``, ``min``; empty otherwise.
      seconds: wall time of the scheme's measurement and training.
    """

    name: str
    summary: str
    curves: np.ndarray
    finals: Mapping[str, np.ndarray]
    diverged: tuple[int | None, ...]
    layers: tuple[str, ...]
    activation_std: tuple[float, ...]
    gradient_std: tuple[float, ...]
    jacobian: Mapping[str, float] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0

    def finished(self) -> np.ndarray:
        """Boolean mask ``(seeds,)`` of the seeds that did not diverge."""
        return np.array([d is None for d in self.diverged])

    def mean(self, metric: str) -> float:
        """Mean of ``metric`` over the finished seeds (nan if none)."""
        v = self.finals[metric][self.finished()]
        return float(v.mean()) if v.size else math.nan

    def std(self, metric: str) -> float:
        """Sample std (ddof=1) of ``metric`` over the finished seeds (nan if < 2)."""
        v = self.finals[metric][self.finished()]
        return float(v.std(ddof=1)) if v.size >= 2 else math.nan


def verdict(runs: Sequence[SchemeRuns], metric: str, higher_is_better: bool) -> str:
    """Welch's t-test between the two best schemes by mean ``metric`` over finished seeds
    (:func:`jaxinit._src.compare.stats.verdict`); schemes with < 2 finished seeds are not
    ranked."""
    ranked: dict[str, Sequence[float]] = {}
    for r in runs:
        v = r.finals[metric][r.finished()]
        ranked[r.name] = v.tolist() if v.size >= 2 else [math.nan]
    if all(not np.isfinite(v).all() for v in ranked.values()) and any(
            r.finished().any() for r in runs):
        return "fewer than 2 finished seeds per scheme: no significance test (--seeds 2+)"
    return welch_verdict(ranked, higher_is_better=higher_is_better)


def _num(v: float) -> str:
    return f"{v:.2e}" if math.isfinite(v) else "nan"


def _pm(mean: float, std: float, percent: bool) -> str:
    if not math.isfinite(mean):
        return "nan"
    if percent:
        return f"{mean:.1%} ± {std:.1%}" if math.isfinite(std) else f"{mean:.1%}"
    return f"{mean:.4f} ± {std:.4f}" if math.isfinite(std) else f"{mean:.4f}"


@dataclasses.dataclass(frozen=True, eq=False)
class CompareResult:
    """The comparison: ``str()`` is the table and the verdict, ``to_json()`` the numbers.

    Attributes:
      description: one line saying what was compared.
      settings: the configuration, as a JSON-ready mapping.
      metric: the ranking metric; ``higher_is_better`` its direction.
      seeds, steps: runs per scheme and steps per run.
      planned: the schemes asked for, in order.
      runs: the schemes that finished (all of ``planned`` unless interrupted).
      verdict: the one-line verdict over the finished schemes.
    """

    description: str
    settings: Mapping[str, Any]
    metric: str
    higher_is_better: bool
    seeds: int
    steps: int
    planned: tuple[str, ...]
    runs: tuple[SchemeRuns, ...]
    verdict: str

    @property
    def complete(self) -> bool:
        return len(self.runs) == len(self.planned)

    def columns(self) -> list[str]:
        """The table's column titles (the HTML report uses the same): the final metrics
        as mean ± std over the finished seeds, the diverged seeds, and the std at the
        first, middle and last layer at initialization."""
        depth = max((len(r.layers) for r in self.runs), default=0)
        mid = (depth - 1) // 2 + 1
        at = f"l=1, {mid}, {depth}"
        titles = {m: m.replace("_", " ") + (" (ranked)" if m == self.metric else "")
                  for m in FINALS}
        return ["scheme", *(titles[m] for m in FINALS), "diverged", f"act std {at}",
                f"grad std {at}"]

    def rows(self) -> list[list[str]]:
        """One row of strings per finished scheme, in the order of :meth:`columns`."""
        out = []
        for r in self.runs:
            def at(v: Sequence[float]) -> str:
                if not v:
                    return "-"
                return " ".join(_num(x) for x in (v[0], v[(len(v) - 1) // 2], v[-1]))

            div = sum(d is not None for d in r.diverged)
            out.append([
                r.name,
                *(_pm(r.mean(m), r.std(m), m == "test_accuracy") for m in FINALS),
                f"{div}/{self.seeds}",
                at(r.activation_std),
                at(r.gradient_std),
            ])
        return out

    def table(self) -> str:
        head, rows = self.columns(), self.rows()
        widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c)
                  for i, c in enumerate(head)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths, strict=True)),
                 "  ".join("-" * w for w in widths)]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
                  for row in rows]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table() + "\n" + self.verdict_line()

    def verdict_line(self) -> str:
        """The verdict, with the number of seeds and whether every scheme ran."""
        done = "" if self.complete else (
            f" (interrupted: {len(self.runs)} of {len(self.planned)} schemes finished)")
        return f"Verdict ({self.metric}, {self.seeds} seeds, {self.steps} steps): " \
               f"{self.verdict}{done}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready mapping (non-finite numbers as null), ``schema_version`` 2."""

        def clean(v: Any) -> Any:
            if isinstance(v, np.ndarray):
                return clean(v.tolist())
            if isinstance(v, float | np.floating):
                return float(v) if math.isfinite(v) else None
            if isinstance(v, Mapping):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, list | tuple):
                return [clean(x) for x in v]
            return v

        import jax

        return clean({
            "schema_version": 2,
            "description": self.description,
            "settings": dict(self.settings),
            "versions": {"jax": jax.__version__, "backend": jax.default_backend()},
            "metric": self.metric,
            "seeds": self.seeds,
            "steps": self.steps,
            "complete": self.complete,
            "planned": list(self.planned),
            "verdict": self.verdict,
            "schemes": {
                r.name: {
                    "summary": r.summary,
                    "curves": r.curves,
                    "finals": dict(r.finals),
                    "diverged": list(r.diverged),
                    "mean": {m: r.mean(m) for m in r.finals},
                    "std": {m: r.std(m) for m in r.finals},
                    "layers": list(r.layers),
                    "activation_std": r.activation_std,
                    "gradient_std": r.gradient_std,
                    "jacobian": dict(r.jacobian),
                    "seconds": r.seconds,
                }
                for r in self.runs
            },
        })

    def to_json_text(self) -> str:
        return json.dumps(self.to_json(), indent=1, allow_nan=False) + "\n"


def summarize(description: str, settings: Mapping[str, Any], metric: str,
              higher_is_better: bool, seeds: int, steps: int, planned: Sequence[str],
              runs: Sequence[SchemeRuns]) -> CompareResult:
    """The :class:`CompareResult` of the finished ``runs``, with their verdict."""
    text = verdict(runs, metric, higher_is_better) if runs else "no scheme finished"
    return CompareResult(description, settings, metric, higher_is_better, seeds, steps,
                         tuple(planned), tuple(runs), text)
