"""`jaxinit compare --model ... --data ...`: the user's model through compare_model, bad
input (exit 2, one line naming the argument, nothing written), the files and the HTML
report in a real browser, and Ctrl-C (exit 130, the finished schemes written)."""

import contextlib
import io
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import textwrap

import jax
import numpy as np
import optax
import pytest
from browser import open_page

import jaxinit
from jaxinit import __main__ as cli

ROOT = pathlib.Path(__file__).parents[1]

USER_MODULE = '''
import numpy as np
import optax
import flax.linen as nn

class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        for _ in range(3):
            x = nn.relu(nn.Dense(16)(x))
        return nn.Dense(3)(x)

def make_mlp():
    return MLP()

def two_args(a, b):
    return MLP()

def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8)).astype(np.float32)
    y = ((x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0)).astype(np.int32)
    return x[:64], y[:64], x[64:], y[64:]

def data_float_labels():
    x, y, xt, yt = data()
    return x, y.astype(np.float32), xt, yt

def data_bad_shape():
    x, y, xt, yt = data()
    return x, np.stack([y, y], 1), xt, yt

def data_with_args(n):
    return data()

def data_batch_function():
    def batch(key, step):
        return data()[:2]
    return batch

def loss_mean(apply, batch):
    x, y = batch
    return optax.softmax_cross_entropy_with_integer_labels(apply(x), y).mean()

def loss_vector(apply, batch):
    x, y = batch
    return optax.softmax_cross_entropy_with_integer_labels(apply(x), y)
'''

SCHEMES = ("he", "random")
SEEDS, STEPS = 3, 30


def _main(argv):
    """``cli.main(argv)`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    folder = tmp_path_factory.mktemp("user")
    (folder / "user_models.py").write_text(USER_MODULE)
    (folder / "broken.py").write_text("import a_module_that_does_not_exist\n")
    return folder


@pytest.fixture(scope="module")
def run(user):
    """One CLI run on the user's model, shared by the tests of this module."""
    out = user / "out"
    spec = str(user / "user_models.py")
    code, stdout, stderr = _main([
        "compare", "--model", f"{spec}:make_mlp", "--data", f"{spec}:data",
        "--loss", f"{spec}:loss_mean", "--schemes", ",".join(SCHEMES),
        "--seeds", str(SEEDS), "--steps", str(STEPS), "--batch-size", "32",
        "--optimizer", "adam", "--lr", "0.01", "--metric", "test_loss", "--out", str(out),
    ])
    assert code == 0, stderr
    return out, stdout, stderr, json.loads((out / "results.json").read_text())


def test_user_model_run_matches_compare_model(run, user):
    out, _, _, data = run
    assert list(data["schemes"]) == list(SCHEMES) and data["complete"] is True
    assert data["metric"] == "test_loss" and data["seeds"] == SEEDS
    # The same numbers as the Python API called directly with the same settings.
    sys.path.insert(0, str(user))
    try:
        import user_models
    finally:
        sys.path.remove(str(user))
    direct = jaxinit.compare_model(
        user_models.make_mlp(), user_models.data(), user_models.loss_mean, schemes=["he"],
        seeds=SEEDS, steps=STEPS, optimizer=optax.adam(0.01), metric="test_loss",
        batch_size=32, key=jax.random.key(0))
    np.testing.assert_allclose(data["schemes"]["he"]["curves"], direct.curves["he"],
                               rtol=1e-5)
    np.testing.assert_allclose(data["schemes"]["he"]["finals"]["test_loss"],
                               direct.finals["he"]["test_loss"], rtol=1e-5)
    assert sorted(p.name for p in out.iterdir()) == [
        "loss_curves.png", "report.html", "results.json", "signal_std.png"]
    assert not [p for p in user.iterdir() if p.name.startswith(".out-")]  # no staging left


def test_user_model_signal_through_depth(run):
    he, random = (run[3]["schemes"][s] for s in ("he", "random"))
    assert he["layers"] == ["Dense_0", "Dense_1", "Dense_2", "Dense_3"]
    # He keeps the activation std of order one through the 3 ReLU layers (unit inputs);
    # N(0, 0.01^2) on width 16 shrinks it by ~0.01 * sqrt(16 / 2) ~ 0.03 per layer.
    assert 0.2 < he["activation_std"][2] < 5
    assert random["activation_std"][2] < 1e-3 * he["activation_std"][2]
    assert random["gradient_std"][0] < 1e-3 * he["gradient_std"][0]


def test_user_model_prints_table_verdict_and_progress(run):
    _, stdout, stderr, data = run
    lines = stdout.splitlines()
    assert any(line.startswith("he ") for line in lines)
    assert any(line.startswith("random ") for line in lines)
    assert lines[-1] == f"Verdict (test_loss, {SEEDS} seeds, {STEPS} steps): {data['verdict']}"
    # tqdm over schemes x seeds x steps, with the elapsed<remaining ETA, moved by
    # compare_model's progress calls for each scheme (tqdm may skip drawing the last).
    total = len(SCHEMES) * SEEDS * STEPS
    counts = [int(c) for c in re.findall(rf"(\d+)/{total} \[", stderr)]
    assert counts and max(counts) >= SEEDS * STEPS, stderr
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d", stderr)  # elapsed < remaining
    assert f"random ({SEEDS} seeds at once)" in stderr


def test_report_renders_in_a_browser(run):
    out, *_, data = run
    with open_page(out / "report.html") as page:
        rows = page.locator("#results tbody tr")
        assert rows.count() == len(SCHEMES)
        assert [rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())
                ] == list(SCHEMES)
        headers = page.locator("#results thead th").all_inner_texts()
        assert headers[0] == "scheme" and "test loss (ranked)" in headers
        widths = page.evaluate("[...document.images].map(i => i.complete ? i.naturalWidth : 0)")
        assert len(widths) == 2 and all(w > 0 for w in widths), widths
        assert data["verdict"] in page.locator("#verdict").inner_text()


def _bad(user, tmp_path, **options):
    spec = str(user / "user_models.py")
    argv = {"--model": f"{spec}:make_mlp", "--data": f"{spec}:data", "--steps": "2",
            "--seeds": "2", "--schemes": "he", "--out": str(tmp_path / "out")}
    argv.update({k.replace("_", "-"): v.replace("FILE", spec).replace("BROKEN",
                 str(user / "broken.py")) for k, v in options.items()})
    code, _, stderr = _main(["compare", *(x for kv in argv.items() for x in kv)])
    return code, stderr


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"__model": "BROKEN:make"}, "--model="),
        ({"__model": "FILE:no_such_factory"}, "has no attribute 'no_such_factory'"),
        ({"__model": "FILE:two_args"}, "not a factory make(rngs)"),
        ({"__data": "FILE:data_bad_shape"}, "y_train shape (64, 2)"),
        ({"__data": "FILE:data_float_labels"}, "expected integer class labels"),
        ({"__data": "FILE:data_with_args"}, "takes arguments; expected a zero-argument"),
        ({"__data": "FILE:data_batch_function"}, "expected (x_test, y_test) arrays"),
        ({"__loss": "FILE:loss_vector"}, "returned a value of shape (64,); expected a scalar"),
        ({"__schemes": "he,nope"}, "--schemes='he,nope'"),
        ({"__schemes": "he,lsuv"}, "no lsuv with --model"),
        ({"__steps": "0"}, "--steps=0: expected a positive integer"),
        ({"__seeds": "-1"}, "--seeds=-1: expected a positive integer"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(user, tmp_path, options,
                                                             expected):
    options = {k.replace("__", "--"): v for k, v in options.items()}
    code, stderr = _bad(user, tmp_path, **options)
    assert code == 2
    assert stderr.endswith("\n") and stderr.count("\n") == 1, stderr  # exactly one line
    line = stderr.strip()
    assert expected in line, line
    argument = next(iter(options))
    assert line.startswith("jaxinit compare: error: ")
    if argument in ("--model", "--data", "--loss"):
        assert f"{argument}='" in line  # names the argument and the spec
    assert "Traceback" not in line
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []


def test_ctrl_c_writes_the_finished_schemes_and_exits_130(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")]), MPLBACKEND="Agg")
    # Each scheme takes seconds (2 seeds of 400 steps): interrupt once the first is done.
    # Six more schemes keep the run going for tens of seconds after that line, so a
    # loaded machine that is slow to deliver the signal still interrupts it mid-run.
    schemes = ["he", "xavier", "lecun", "orthogonal", "uniform", "he_uniform", "lecun_uniform"]
    cmd = [sys.executable, "-m", "jaxinit", "compare", "--depth", "2", "--width", "8",
           "--activation", "tanh", "--optimizer", "adam", "--seeds", "2", "--steps", "400",
           "--schemes", ",".join(schemes), "--probe-batch", "32", "--jacobian-examples", "1",
           "--no-progress", "--out", str(out)]
    # A pytest-xdist worker ignores SIGINT, and a child inherits an ignored signal, so the
    # child would never see Ctrl-C: while it starts, SIGINT has a handler here, which
    # exec resets to the default disposition in the child (Python's KeyboardInterrupt).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        line = proc.stderr.readline()
        while line and not line.startswith("finished he"):
            line = proc.stderr.readline()
        assert line.startswith("finished he (1/7"), line
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    data = json.loads((out / "results.json").read_text())
    assert data["complete"] is False and data["planned"] == schemes
    assert "he" in data["schemes"] and len(data["schemes"]) < len(schemes)
    assert "interrupted" in stdout.splitlines()[-1]
    assert (out / "report.html").exists()


def test_core_import_needs_no_cli_dependencies():
    code = textwrap.dedent("""
        import sys, jaxinit, jaxinit.__main__
        print(sorted(m for m in ('optax', 'sklearn', 'matplotlib', 'tqdm', 'flax')
                     if m in sys.modules))
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
