"""Property fuzz of every public initializer with hostile arguments.

Each call either returns finite values of the requested shape and dtype, or raises
ValueError/TypeError whose message starts with the initializer's name and names the
argument (``arg=value``, or the key, shape or dtype). Any other exception, a non-finite
weight, or an anonymous message is a finding. The budget is set in tests/fuzzing.py.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from fuzzing import PROFILE, WATCHDOG_STATUS, Outcomes, watchdog
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxinit
import jaxinit.torch as jt

# Each entry builds an initializer from one hostile value `x` (its magnitude argument).
BUILDERS = {
    "constant": lambda x: jaxinit.constant(x),
    "uniform": lambda x: jaxinit.uniform(x),
    "uniform_range": lambda x: jaxinit.uniform_range(-1.0, x),
    "normal": lambda x: jaxinit.normal(x),
    "truncated_normal": lambda x: jaxinit.truncated_normal(1.0, None, -2.0, x),
    "variance_scaling": lambda x: jaxinit.variance_scaling(x, "fan_avg", "uniform"),
    "variance_scaling_t": lambda x: jaxinit.variance_scaling(x, "fan_in", "truncated_normal"),
    "glorot_uniform": lambda x: jaxinit.glorot_uniform(in_axis=x),
    "he_normal": lambda x: jaxinit.he_normal(out_axis=x),
    "lecun_normal": lambda x: jaxinit.lecun_normal(batch_axis=x),
    "orthogonal": lambda x: jaxinit.orthogonal(x),
    "orthogonal_polar": lambda x: jaxinit.orthogonal(x, method="polar"),
    "delta_orthogonal": lambda x: jaxinit.delta_orthogonal(x),
    "identity": lambda x: jaxinit.identity(x),
    "dirac": lambda x: jaxinit.dirac(x),
    "sparse": lambda x: jaxinit.sparse(0.5, x),
    "sparse_sparsity": lambda x: jaxinit.sparse(x),
    "spectral": lambda x: jaxinit.spectral(x),
    "residual_normal": lambda x: jaxinit.residual_normal(4, x),
    "residual_normal_layers": lambda x: jaxinit.residual_normal(x),
    "small_init": lambda x: jaxinit.small_init(x),
    "wang_init": lambda x: jaxinit.wang_init(8, x),
    "olmo_init": lambda x: jaxinit.olmo_init(x),
    "fixup_init": lambda x: jaxinit.fixup_init(x),
    "t_fixup_init": lambda x: jaxinit.t_fixup_init(x, "encoder"),
    "deepnorm_init": lambda x: jaxinit.deepnorm_init(x),
    "mup_output": lambda x: jaxinit.mup_output(4, x),
    "scaled": lambda x: jaxinit.scaled(jaxinit.he_normal(), x),
    "stacked": lambda x: jaxinit.stacked(jaxinit.normal(), x),
    "blocks": lambda x: jaxinit.blocks([jaxinit.normal(), jaxinit.zeros], [2, x]),
    "lora_a": lambda x: jaxinit.lora_a(x),
    "mamba_dt_bias": lambda x: jaxinit.mamba_dt_bias(dt_max=x),
    "mamba_a_log": lambda x: jaxinit.mamba_a_log(),
    "s4d_lin": lambda x: jaxinit.s4d_lin(),
    "hippo_legs_a": lambda x: jaxinit.hippo_legs_a(),
    "lru_nu_log": lambda x: jaxinit.lru_nu_log(r_max=x),
    "lru_theta_log": lambda x: jaxinit.lru_theta_log(x),
    "rg_lru_a": lambda x: jaxinit.rg_lru_a(c=x),
    "torch.kaiming_uniform": lambda x: jt.kaiming_uniform(x),
    "torch.kaiming_normal": lambda x: jt.kaiming_normal(0.0, x),
    "torch.xavier_normal": lambda x: jt.xavier_normal(x),
    "torch.trunc_normal": lambda x: jt.trunc_normal(0.0, 1.0, -2.0, x),
    "torch.trunc_normal_std": lambda x: jt.trunc_normal(0.0, x),
    "torch.orthogonal": lambda x: jt.orthogonal(x),
    "torch.sparse": lambda x: jt.sparse(0.5, x),
    "torch.eye": lambda x: jt.eye(),
    "torch.dirac": lambda x: jt.dirac(x),
    "torch.linear_bias": lambda x: jt.linear_bias(x),
    "torch.embedding": lambda x: jt.embedding(),
}
# Names an error may start with: the factory's, its initializer's, or a scheme it builds.
NAMES = {n.split(".")[-1].removesuffix("_t").removesuffix("_polar") for n in BUILDERS} | {
    "variance_scaling", "normal", "constant", "uniform_range", "truncated_normal",
    "scaled", "stacked", "blocks", "eye", "kaiming_normal", "kaiming_uniform",
    "xavier_uniform", "xavier_normal", "calculate_gain", "compute_fans",
}
NAMES |= set(jaxinit.__all__) | set(jt.__all__)
NAMES |= {n.removesuffix("_sparsity").removesuffix("_layers").removesuffix("_std")
          for n in NAMES}
BENIGN = st.one_of(st.sampled_from([1, 2, 4, 0.5, 1.0, 2.0, 0.02]), st.floats(1e-3, 10.0))
HOSTILE = st.one_of(
    BENIGN, BENIGN, BENIGN,
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, -0.0, 1e-320, 1e38, 4e38, 1e300, -1.0, 7e4, 2.0**31, 2.0**63]),
    st.integers(-(2**70), 2**70),
    st.sampled_from([None, "x", True, 1j, (1, 2), np.float16(3.0), np.int64(4), []]),
)
SHAPES = st.one_of(
    st.lists(st.integers(1, 6), min_size=2, max_size=4).map(tuple),
    st.lists(st.integers(0, 6), min_size=0, max_size=4).map(tuple),
    # Shapes beyond the size limits are refused before XLA sees them. (A shape that fits
    # the limits but not the machine's memory aborts inside XLA: not fuzzed, see README.)
    st.lists(st.sampled_from([-2, -1, 0, 3, 2**40, 2**62, 2**64]), min_size=1, max_size=3)
    .filter(lambda s: 0 in s or any(d < 0 for d in s) or np.prod([float(d) for d in s]) > 2**47)
    .map(tuple),
    st.sampled_from([(2.5, 3), "ab", None, 7, (np.int32(3), 4), (True, 3)]),
)
FLOATS = [getattr(jnp, n) for n in dir(jnp) if re.fullmatch(r"float\d+(_\w+)?", n)]
DTYPES = st.sampled_from([
    None, None, jnp.float32, jnp.bfloat16, jnp.float16, jnp.bfloat16, jnp.complex64, jnp.int32,
    jnp.bool_, "float32", "nonsense", np.dtype(">f4"), object, *FLOATS,
])
KEYS = st.sampled_from(["typed", "raw", "typed", "raw", "raw3", "int", "float", "batch"])
OUTCOMES = Outcomes("initializers")
TESTS = pathlib.Path(__file__).parent


def make_key(kind: str):
    return {
        "typed": lambda: jax.random.key(0),
        "raw": lambda: jax.random.PRNGKey(0),
        "raw3": lambda: jnp.zeros((3,), jnp.uint32),
        "int": lambda: 5,
        "float": lambda: jnp.zeros((2,), jnp.float32),
        "batch": lambda: jax.random.split(jax.random.key(0), 2),
    }[kind]()


def clean(error: BaseException) -> bool:
    """A refusal that says who refused and what was wrong."""
    message = str(error)
    prefix = message.split(":", 1)[0]
    names_argument = "=" in message or any(w in message for w in ("key", "shape", "dtype"))
    return prefix in NAMES and names_argument


def check(name: str, x, shape, dtype, key_kind: str, config=None) -> str:
    """One hostile call: its outcome, or an AssertionError describing the finding. A call
    that runs past the watchdog's limit ends the run naming the configuration."""
    call = f"{name}({x!r})({shape!r}, {dtype!r}) with a {key_kind} key"
    try:
        with watchdog(call, config), warnings.catch_warnings():
            # A zero-element weight warns, as in torch.nn.init: not a finding.
            warnings.filterwarnings("ignore", message=".*has no elements")
            init = BUILDERS[name](x)
            # Waits for the compiled program too (dispatch is asynchronous).
            out = jax.block_until_ready(init(make_key(key_kind), shape, dtype))
    except (ValueError, TypeError) as e:
        assert clean(e), f"{name}({x!r})({shape!r}, {dtype!r}): anonymous message: {e}"
        return "clean error"
    except Exception as e:
        raise AssertionError(f"{name}({x!r})({shape!r}, {dtype!r}): crash {e!r}") from e
    want = tuple(shape) if not isinstance(shape, int) else (shape,)
    assert out.shape == want, (name, x, shape, out.shape)
    values = np.asarray(out.astype(jnp.complex64 if out.dtype.kind == "c" else jnp.float32))
    assert np.isfinite(values).all(), f"{name}({x!r})({shape}, {dtype}): non-finite weights"
    return "finite result"


@settings(settings.get_profile(PROFILE))
@given(name=st.sampled_from(sorted(BUILDERS)), x=HOSTILE, shape=SHAPES, dtype=DTYPES,
       key_kind=KEYS)
def test_hostile_arguments_give_finite_weights_or_a_named_error(name, x, shape, dtype,
                                                                 key_kind, pytestconfig):
    OUTCOMES["calls"] += 1
    try:
        OUTCOMES[check(name, x, shape, dtype, key_kind, pytestconfig)] += 1
    except AssertionError as e:
        kind = str(e).split(": ", 2)[1].split(" ")[0] if ": " in str(e) else "wrong result"
        OUTCOMES[f"finding: {kind}"] += 1
        raise
    finally:
        OUTCOMES.dump()


def test_the_property_check_detects_findings():
    """The checker itself, on known outcomes (so a fuzz run that finds nothing means
    something): an anonymous message and a crash are findings, a named refusal is not."""
    assert clean(ValueError("normal: stddev=nan must be finite"))
    assert not clean(ValueError("stddev must be finite"))
    assert not clean(ValueError("math domain error"))
    assert check("normal", float("nan"), (2, 2), None, "typed") == "clean error"
    assert check("normal", 0.5, (2, 2), jnp.bfloat16, "raw") == "finite result"


ENDLESS = '''
import jax
from fuzzing import watchdog


def test_endless(pytestconfig):
    endless = jax.jit(lambda x: jax.lax.while_loop(lambda c: c >= 0, lambda c: c | 1, x))
    with watchdog("endless(0)", pytestconfig, seconds=2):
        jax.block_until_ready(endless(0))
'''


def test_the_watchdog_ends_a_call_stuck_in_a_compiled_program(tmp_path):
    """A compiled program that never returns (a while loop whose condition stays true) ends
    the pytest run with the watchdog's status and the call named on the terminal and in
    the report directory; without the watchdog the subprocess would hit its timeout."""
    (tmp_path / "test_endless.py").write_text(ENDLESS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path]),
           "JAXINIT_FUZZ_REPORT": str(tmp_path / "out")}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
         str(tmp_path / "test_endless.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == WATCHDOG_STATUS, (run.returncode, run.stdout, run.stderr)
    assert "fuzz watchdog: endless(0) ran past 2 s" in run.stderr, run.stderr
    assert "test_endless" in run.stderr  # the stack of the stuck call
    assert (tmp_path / "out" / "hang.txt").read_text() == "fuzz watchdog: endless(0) ran past 2 s\n"
