"""`LoadReport`: what `load_pretrained` did, printable, raisable, and a freezing mask."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax

from jaxinit._src.compose.paths import path_str
from jaxinit._src.pretrained.errors import PretrainedError
from jaxinit._src.pretrained.initializer import CastInfo


@dataclasses.dataclass(frozen=True)
class Mismatch:
    """A checkpoint entry whose shape differs from its target parameter's."""

    source_key: str
    target: str
    source_shape: tuple[int, ...]
    target_shape: tuple[int, ...]
    hint: str = ""


def _variable_leaf(x: Any) -> bool:
    return hasattr(x, "get_value") and hasattr(x, "replace")


@dataclasses.dataclass
class LoadReport:
    """What :func:`load_pretrained` loaded, kept, skipped and cast.

    Attributes:
      source: the checkpoint's name (its path for files).
      loaded: target path -> checkpoint key, for every parameter written.
      missing: target paths the checkpoint did not provide (their fresh init was kept).
      unexpected: checkpoint keys with no target parameter (``key -> target`` when a rule
        renamed them).
      ignored: checkpoint keys dropped by ``ignore`` or by a rule without a target.
      reinit: target paths kept at their fresh init because they matched ``reinit``.
      mismatched: entries whose shapes differ (kept at init when not an error).
      cast: dtype casts, with counts of overflowed (always 0: overflow is an error) and
        flushed-to-zero values.

    Example:
      >>> import numpy as np, jaxinit
      >>> target = {"params": {"body": {"kernel": np.zeros((2, 2), np.float32)},
      ...                      "head": {"kernel": np.zeros((2, 5), np.float32)}}}
      >>> ckpt = {"params": {"body": {"kernel": np.ones((2, 2), np.float32)}}}
      >>> _, report = jaxinit.load_pretrained(target, ckpt)
      >>> report.loaded, report.missing
      ({'params/body/kernel': 'params/body/kernel'}, ['params/head/kernel'])
      >>> report.mask(target["params"])
      {'body': {'kernel': True}, 'head': {'kernel': False}}
    """

    source: str
    loaded: dict[str, str] = dataclasses.field(default_factory=dict)
    missing: list[str] = dataclasses.field(default_factory=list)
    unexpected: list[str] = dataclasses.field(default_factory=list)
    ignored: list[str] = dataclasses.field(default_factory=list)
    reinit: list[str] = dataclasses.field(default_factory=list)
    mismatched: list[Mismatch] = dataclasses.field(default_factory=list)
    cast: list[CastInfo] = dataclasses.field(default_factory=list)
    collections: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when nothing is missing, unexpected or mismatched."""
        return not (self.missing or self.unexpected or self.mismatched)

    def raise_if(self, *, missing: bool = True, unexpected: bool = True,
                 mismatched: bool = True) -> LoadReport:
        """Raises :class:`PretrainedError` (with this report) on the chosen problems.

        Returns:
          The report itself, so ``load_pretrained(...)[1].raise_if()`` chains.
        """
        problems = []
        if missing and self.missing:
            problems.append(f"{len(self.missing)} missing")
        if unexpected and self.unexpected:
            problems.append(f"{len(self.unexpected)} unexpected")
        if mismatched and self.mismatched:
            problems.append(f"{len(self.mismatched)} shape-mismatched")
        if problems:
            raise PretrainedError(f"{self.source}: {', '.join(problems)} entries\n{self}")
        return self

    def is_loaded(self, path: str) -> bool:
        """Whether the parameter at `path` (with or without its collection) was loaded."""
        return path in self.loaded or any(f"{c}/{path}" in self.loaded for c in self.collections)

    def mask(self, tree: Any, *, loaded: bool = True) -> Any:
        """A boolean pytree like `tree`: True where the leaf was loaded (or fresh if not `loaded`).

        Pass it to ``optax.masked(optax.set_to_zero(), mask)`` to freeze the pretrained
        body, or use :meth:`labels` with ``optax.partition``. `tree` may be the whole
        variables dict or one collection (``variables["params"]``).
        """
        flat, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_variable_leaf)
        values = [self.is_loaded(path_str(p)) == loaded for p, _ in flat]
        return jax.tree_util.tree_unflatten(treedef, values)

    def labels(self, tree: Any, *, loaded: str = "frozen", fresh: str = "trainable") -> Any:
        """A pytree of labels like `tree` for ``optax.partition``: `loaded` or `fresh`."""
        flat, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_variable_leaf)
        values = [loaded if self.is_loaded(path_str(p)) else fresh for p, _ in flat]
        return jax.tree_util.tree_unflatten(treedef, values)

    @property
    def filter(self) -> Callable[[tuple[Any, ...], Any], bool]:
        """An nnx filter matching the loaded variables, e.g. ``nnx.Not(report.filter)``."""

        def loaded(path: tuple[Any, ...], value: Any) -> bool:
            return self.is_loaded(path_str(path))

        return loaded

    def __str__(self) -> str:
        lines = [f"LoadReport for {self.source}: {len(self.loaded)} loaded, "
                 f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, "
                 f"{len(self.ignored)} ignored, {len(self.reinit)} reinit, "
                 f"{len(self.mismatched)} shape-mismatched, {len(self.cast)} cast"]

        def section(title: str, items: list[str]) -> None:
            if items:
                lines.append(f"  {title}:")
                lines.extend(f"    {item}" for item in items)

        section("missing (fresh init kept)", self.missing)
        section("unexpected (not loaded)", self.unexpected)
        section("ignored", self.ignored)
        section("reinit (fresh init kept)", self.reinit)
        section("shape mismatch", [
            f"{m.source_key} {m.source_shape} -> {m.target} {m.target_shape}{m.hint}"
            for m in self.mismatched])
        section("cast", [f"{c.key}: {c.source_dtype} -> {c.dtype} (overflow {c.overflow}, "
                         f"underflow {c.underflow})" for c in self.cast])
        return "\n".join(lines)
