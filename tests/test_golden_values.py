"""Golden values: the draws of representative public initializers do not change.

The values drawn for a given key, shape, dtype and configuration are part of the API (the
'Values are API' design principle). tests/golden_values.json stores a fingerprint of the
draws of each case below at two shapes, in float32 and bfloat16, for one fixed key: the
sum, the sum of squares and four projections onto fixed pseudo-random +-1 vectors, in
float64. The expected values are pinned values recorded from a reviewed version, not
recomputed by the code under test.

Why a fingerprint with a tolerance rather than a hash: XLA's optimization level changes
the last ulp of some float32 draws (the suite compiles at
``--xla_backend_optimization_level=0``; measured against the default level: 4% of the
elements of a normal draw, 80% of an orthogonal one, by up to 4 float32 ulps, and that
moves 3 of 1536 bfloat16 orthogonal values by one bfloat16 ulp). A hash of the values
rounded to 5 or even 3 significant digits still changed for orthogonal draws, because
some values sit on a rounding boundary. Between the two optimization levels the
fingerprints of all cases moved by at most 5.4e-7 of the draw's norm in float32 and
1.7e-4 in bfloat16; the tolerance is 1e-5 of the norm in float32 and 2e-3 in bfloat16,
while a different key, distribution or fan moves the projections by about the norm
itself and a 1% scale change moves every component by 1% (both checked below; a 1%
change of he_normal's variance fails every he_normal case).

If a fingerprint changes on purpose: run ``python tests/test_golden_values.py --update``,
add an entry to CHANGELOG.md under "Changed" naming the initializers and dtypes whose
values changed and why, and bump the version in pyproject.toml (a breaking change).
"""

from __future__ import annotations

import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit

GOLDEN = pathlib.Path(__file__).with_name("golden_values.json")
SEED = 20261203

DENSE = [(48, 32), (3, 16, 24)]
# delta_orthogonal needs odd spatial sizes and in <= out.
CONV = [(3, 3, 8, 16), (5, 12, 12)]
# A leading batch axis (stacked layers) needs rank >= 3.
BATCHED = [(4, 16, 24), (2, 3, 8, 12)]

CASES = {
    "he_normal": (jaxinit.he_normal(), DENSE),
    "glorot_uniform": (jaxinit.glorot_uniform(), DENSE),
    "lecun_normal": (jaxinit.lecun_normal(), DENSE),
    "orthogonal": (jaxinit.orthogonal(), DENSE),
    "orthogonal_scale2_column0": (jaxinit.orthogonal(2.0, column_axis=0), DENSE),
    "truncated_normal_0.5": (jaxinit.truncated_normal(0.5), DENSE),
    "normal_1.0": (jaxinit.normal(1.0), DENSE),
    "uniform_2.0": (jaxinit.uniform(2.0), DENSE),
    "delta_orthogonal": (jaxinit.delta_orthogonal(), CONV),
    "variance_scaling_fan_avg_uniform": (
        jaxinit.variance_scaling(1.0, "fan_avg", "uniform"),
        DENSE,
    ),
    "variance_scaling_fan_out_normal": (
        jaxinit.variance_scaling(2.0, "fan_out", "normal"),
        DENSE,
    ),
    "variance_scaling_fan_geo_avg_truncated_normal_batch0": (
        jaxinit.variance_scaling(0.5, "fan_geo_avg", "truncated_normal", batch_axis=0),
        BATCHED,
    ),
}
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


TOLERANCE = {"float32": 1e-5, "bfloat16": 2e-3}  # relative to the draw's norm


def fingerprint(values: np.ndarray) -> list[float]:
    """[sum, sum of squares, 4 projections onto fixed random +-1 vectors], in float64."""
    x = np.asarray(values, np.float64).ravel()
    # Signs from a fixed integer hash of (vector, index) (SplitMix64's constants and
    # finalizer), not from a NumPy generator whose stream could change between releases.
    z = np.arange(4, dtype=np.uint64)[:, None] * np.uint64(0xBF58476D1CE4E5B9) + (
        np.arange(x.size, dtype=np.uint64)[None, :] + np.uint64(1)
    ) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    signs = np.where(z >> np.uint64(63), -1.0, 1.0)
    return [float(x.sum()), float(x @ x), *map(float, signs @ x)]


def matches(got: list[float], expected: list[float], dtype_name: str) -> bool:
    """Every component within the dtype's tolerance times the expected norm (squared for
    the sum of squares)."""
    norm = np.sqrt(expected[1])
    scale = np.array([norm, norm * norm, norm, norm, norm, norm])
    return bool(np.all(np.abs(np.subtract(got, expected)) <= TOLERANCE[dtype_name] * scale))


def case_ids() -> list[tuple[str, str, tuple[int, ...]]]:
    return [
        (name, dtype_name, shape)
        for name, (_, shapes) in CASES.items()
        for dtype_name in DTYPES
        for shape in shapes
    ]


def label(name: str, dtype_name: str, shape: tuple[int, ...]) -> str:
    return f"{name}/{dtype_name}/{'x'.join(map(str, shape))}"


def compute(name: str, dtype_name: str, shape: tuple[int, ...]) -> list[float]:
    init = CASES[name][0]
    return fingerprint(init(jax.random.key(SEED), shape, DTYPES[dtype_name]))


def load() -> dict[str, list[float]]:
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize(("name", "dtype_name", "shape"), case_ids(), ids=lambda v: str(v))
def test_golden_values(name, dtype_name, shape):
    key = label(name, dtype_name, shape)
    expected = load().get(key)
    assert expected is not None, (
        f"{key} has no golden fingerprint in {GOLDEN.name}; run "
        "`python tests/test_golden_values.py --update` to record it."
    )
    got = compute(name, dtype_name, shape)
    assert matches(got, expected, dtype_name), (
        f"the values drawn by {key} changed. Values are part of the API: if this change "
        "is deliberate, run `python tests/test_golden_values.py --update`, add a "
        "CHANGELOG.md entry under 'Changed' naming the initializers and dtypes whose "
        "values changed and why, and bump the version in pyproject.toml. "
        f"Got {got}, expected {expected}."
    )


def test_golden_file_has_no_stale_entries():
    expected = {label(*c) for c in case_ids()}
    assert set(load()) == expected, sorted(set(load()) ^ expected)


@pytest.mark.parametrize("dtype_name", list(DTYPES))
def test_fingerprint_sees_real_changes_and_ignores_ulps(dtype_name):
    """Last-ulp noise passes; a 1% scale change, another key or another fan mode fails."""
    shape, dtype = (48, 32), DTYPES[dtype_name]
    w = np.asarray(jaxinit.he_normal()(jax.random.key(SEED), shape, jnp.float32))
    expected = fingerprint(w.astype(dtype))
    noisy = np.nextafter(w, np.float32(np.inf)).astype(np.float32)  # every element 1 ulp up
    assert matches(fingerprint(noisy.astype(dtype)), expected, dtype_name)
    assert not matches(fingerprint((w * np.float32(1.01)).astype(dtype)), expected, dtype_name)
    other_key = jaxinit.he_normal()(jax.random.key(SEED + 1), shape, dtype)
    assert not matches(fingerprint(other_key), expected, dtype_name)
    fan_out = jaxinit.variance_scaling(2.0, "fan_out", "truncated_normal")
    assert not matches(
        fingerprint(fan_out(jax.random.key(SEED), shape, dtype)), expected, dtype_name
    )


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python tests/test_golden_values.py --update")
    table = {label(*c): compute(*c) for c in case_ids()}
    rows = [f" {json.dumps(k)}: {json.dumps(table[k])}" for k in sorted(table)]
    GOLDEN.write_text("{\n" + ",\n".join(rows) + "\n}\n")
    print(f"wrote {len(table)} fingerprints to {GOLDEN}")
