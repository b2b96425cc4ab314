"""`jaxinit compare` on the built-in architectures: measurements, seeds, verdict, files,
the configuration (validated once, at construction) and its command-line options."""

import dataclasses
import json
import math

import jax
import numpy as np
import pytest

import jaxinit
from jaxinit import __main__ as cli
from jaxinit._src import compare as cmp
from jaxinit._src.compare import output
from jaxinit._src.compare.stats import welch_t_test

SEEDS = 3


@pytest.fixture(scope="module")
def small():
    """A 6-layer ReLU MLP of width 32: random N(0, 0.01^2) against He, 3 seeds of 150 SGD
    steps (lr 0.01)."""
    config = cmp.CompareConfig(depth=6, width=32, steps=150, lr=1e-2, seeds=SEEDS,
                               schemes=("random", "he"), probe_batch=128, jacobian_examples=2)
    return cmp.compare(config)


def test_compare_reports_every_layer_seed_and_step(small):
    assert [r.name for r in small.runs] == ["random", "he"] and small.complete
    for r in small.runs:
        assert len(r.activation_std) == len(r.gradient_std) == len(r.layers) == 6
        assert r.curves.shape == (SEEDS, 150)
        assert set(r.finals) == {"train_loss", "test_loss", "test_accuracy", "train_accuracy"}
        assert all(v.shape == (SEEDS,) for v in r.finals.values())
        assert set(r.jacobian) == {"mean_sq", "spread", "max", "min"}
        assert np.all((r.finals["test_accuracy"] >= 0) & (r.finals["test_accuracy"] <= 1))
        assert r.diverged == (None,) * SEEDS


def test_seeds_differ_and_are_paired(small):
    he = small.runs[1]
    # Seed i re-draws the parameters and the batch order: the seeds' curves differ...
    assert not np.allclose(he.curves[0], he.curves[1])
    # ...and seed 0 is the seed of the single-seed comparison (the same keys as before).
    runner = cmp.Runner(small_config(small))
    losses, *_ = runner.train(runner.variables(cmp.SCHEMES["he"]))
    np.testing.assert_allclose(he.curves[0], losses, rtol=1e-6)


def small_config(result):
    return cmp.CompareConfig(**result.settings)


def test_compare_measures_the_signal(small):
    random, he = small.runs
    # N(0, 0.01^2) on width 32 with ReLU multiplies the activation std by about
    # 0.01 * sqrt(32 / 2) = 0.04 per layer: after 6 layers it is ~0.04^5 ~ 1e-7 of layer 1.
    assert random.activation_std[-1] < 1e-5 * random.activation_std[0]
    # He keeps the second moment: the std stays of order one (standardized inputs).
    assert 0.2 < he.activation_std[-1] < 5
    assert 0.2 < he.activation_std[-1] / he.activation_std[0] < 5
    # Backward: random's gradient vanishes towards the input, He's does not.
    assert random.gradient_std[0] < 1e-5 * random.gradient_std[-1]
    assert 0.2 < he.gradient_std[0] / he.gradient_std[-1] < 5
    # The Jacobian of the hidden stack: He's mean s^2 is of order one, random's vanishes.
    assert random.jacobian["mean_sq"] < 1e-10 < 0.1 < he.jacobian["mean_sq"] < 10


def test_compare_trains_and_gives_the_verdict(small):
    random, he = small.runs
    # Chance level on 10 balanced classes is ln 10 = 2.303; random cannot leave it.
    assert np.all(np.abs(random.finals["train_loss"] - math.log(10)) < 0.05)
    assert np.all(he.finals["train_loss"] < 0.5) and he.mean("test_accuracy") > 0.8
    # The verdict is Welch's test recomputed from the per-seed accuracies.
    _, p = welch_t_test(he.finals["test_accuracy"], random.finals["test_accuracy"])
    assert p < 0.05
    assert small.verdict == f"he is best (Welch p={p:.3g} vs random)"
    assert small.verdict_line().startswith("Verdict (test_accuracy, 3 seeds, 150 steps): he")
    table = small.table()
    assert "random" in table and "he" in table and "l=1, 3, 6" in table
    # mean ± std over the seeds, in the table as in the numbers.
    acc = he.finals["test_accuracy"]
    assert f"{acc.mean():.1%} ± {acc.std(ddof=1):.1%}" in table


def test_no_clear_winner_between_equal_schemes():
    # Two schemes with the same per-seed numbers up to noise: not significant.
    def runs(name, values):
        return cmp.SchemeRuns(name, "", np.zeros((3, 2)), {"test_accuracy": np.array(values)},
                              (None,) * 3, ("a",), (1.0,), (1.0,))

    result = cmp.results.summarize("", {}, "test_accuracy", True, 3, 2, ("a", "b"),
                                   [runs("a", [0.90, 0.92, 0.91]), runs("b", [0.91, 0.89, 0.92])])
    assert result.verdict.startswith("no clear winner among a, b")
    one = cmp.SchemeRuns("a", "", np.zeros((1, 2)), {"test_accuracy": np.array([0.9])},
                         (None,), ("a",), (1.0,), (1.0,))
    single = cmp.results.summarize("", {}, "test_accuracy", True, 1, 2, ("a",), [one])
    assert single.verdict.startswith("fewer than 2 finished seeds per scheme")


def test_json_is_strict_and_complete(small, tmp_path):
    data = json.loads(small.to_json_text())  # strict JSON: NaN would have raised
    assert data["schema_version"] == 2 and data["settings"]["depth"] == 6
    assert set(data["schemes"]) == {"random", "he"} and data["complete"] is True
    he = data["schemes"]["he"]
    assert np.asarray(he["curves"]).shape == (SEEDS, 150)
    assert he["mean"]["test_accuracy"] == pytest.approx(np.mean(he["finals"]["test_accuracy"]))
    assert he["std"]["test_accuracy"] == pytest.approx(
        np.std(he["finals"]["test_accuracy"], ddof=1))
    assert data["verdict"] == small.verdict
    # NaN/inf become null rather than invalid JSON; a diverged seed is counted.
    nan = cmp.SchemeRuns("x", "", np.array([[1.0, math.nan]]),
                         {"train_loss": np.array([math.nan])}, (1,), ("a",), (math.inf,),
                         (1.0,))
    bad = cmp.results.summarize("", {}, "train_loss", False, 1, 2, ("x",), [nan])
    encoded = json.loads(bad.to_json_text())
    assert encoded["schemes"]["x"]["activation_std"] == [None]
    assert encoded["schemes"]["x"]["curves"] == [[1.0, None]]
    assert bad.verdict == "no scheme finished without diverging"


# Figure sizes (inches) at dpi 110: the pixel sizes of the two plots.
PLOT_PIXELS = {"signal_std.png": (462, 1210), "loss_curves.png": (462, 770)}


def colour_pixels(path, colour, alpha=1.0):
    """Pixels of ``colour`` (a band: ``alpha`` of it over white) in the PNG at ``path``."""
    import matplotlib.colors
    import matplotlib.image

    rgb = matplotlib.image.imread(path)[..., :3]
    c = np.asarray(matplotlib.colors.to_rgb(colour), np.float32)
    c = alpha * c + (1 - alpha)
    return int(np.all(np.abs(rgb - c) < 0.02, axis=-1).sum())


def check_plot(path, n_schemes):
    """The expected size, and a line in each scheme's colour (C0, C1, ...).

    Shown once to fail when the loss curves are not drawn (0 pixels of colour C0).
    """
    import matplotlib.image

    image = matplotlib.image.imread(path)
    assert image.shape[:2] == PLOT_PIXELS[path.name], image.shape
    assert image[..., :3].std() > 0.01  # not a blank (uniform) canvas
    for i in range(n_schemes):
        drawn = colour_pixels(path, f"C{i}")
        assert drawn > 50, (path.name, f"C{i}", drawn)  # a plotted curve, not a legend dot


def test_plots_have_curves_and_seed_bands(small, tmp_path):
    paths = output.write_files(small, tmp_path)
    assert {p.name for p in paths} == {"results.json", "report.html", *output.PLOTS}
    for name in output.PLOTS:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        check_plot(tmp_path / name, len(small.runs))
    # He's seeds differ early in training: its mean ± std band (C1 at alpha 0.25 over
    # white) covers a visible area. Shown once to fail with the band not drawn (0).
    assert colour_pixels(tmp_path / "loss_curves.png", "C1", alpha=0.25) > 200


def test_report_is_self_contained(small, tmp_path):
    output.write_files(small, tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert page.count("<img ") == 2 and page.count('src="data:image/png;base64,') == 2
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert page.count('<tr data-scheme="') == 2
    assert small.verdict in page


def _tiny(arch, scheme, **changes):
    config = cmp.CompareConfig(arch=arch, depth=1, width=8, steps=4, seeds=2,
                               schemes=(scheme,), optimizer="adam", lr=1e-3,
                               batch_size=16, probe_batch=16, jacobian_examples=1, **changes)
    return cmp.compare(config)


def test_vit_on_patches():
    (he,) = _tiny("vit", "he").runs
    assert he.layers[:3] == ("embed", "pos", "layer0/ln1") and he.layers[-1] == "ln_f"
    assert he.curves.shape == (2, 4) and set(he.jacobian) == {"mean_sq", "spread", "max", "min"}
    # The patch embedding's output std is sigma_w * sqrt(sum of E[x^2] over the 4 pixels
    # of a patch) <= sqrt(2/4) * 2 = 1.41 (standardized pixels, some constant at 0); the
    # 4 x 8 kernel's 32 draws move the realized std by up to ~1.4x (3 sigma of a
    # chi-square with 32 degrees of freedom). A LayerNorm follows: its output std is 1.
    assert 0.5 < he.activation_std[0] < 2.5
    assert abs(he.activation_std[2] - 1) < 0.01


def test_gpt_on_the_bytes_of_a_text(tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_bytes(bytes(range(32, 127)) * 20)
    result = _tiny("gpt", "random", text=str(text))
    (random,) = result.runs
    assert random.layers[0] == "embed" and "layer0/mlp_out" in random.layers
    assert random.jacobian == {} and random.curves.shape == (2, 4)
    # Random's logits are ~N(0, (0.01 * sqrt(8))^2) at init: the first loss is the
    # uniform next-byte loss ln 256 = 5.545 (to ~1e-3).
    np.testing.assert_allclose(random.curves[:, 0], math.log(256), atol=0.01)
    assert result.settings["text"] == str(text)


def test_load_text_windows_are_the_file_bytes(tmp_path):
    path = tmp_path / "t.txt"
    raw = bytes(np.random.default_rng(0).integers(0, 256, 1000, dtype=np.uint8))
    path.write_bytes(raw)
    d = cmp.load_text(path, test_fraction=0.25, seed=1)
    x = np.concatenate([d.x_train, d.x_test])
    y = np.concatenate([d.y_train, d.y_test])
    assert x.shape == (31, 32) and len(d.x_test) == 8  # (1000 - 1) // 32 windows
    np.testing.assert_array_equal(y[:, :-1], x[:, 1:])  # y is x shifted by one byte
    windows = {raw[i:i + 33] for i in range(0, 31 * 32, 32)}
    got = {bytes(np.append(a, b[-1]).astype(np.uint8)) for a, b in zip(x, y, strict=True)}
    assert got == windows
    # The default corpus ships with Python.
    assert cmp.load_text().x_train.shape[0] > 1000


def test_uniform_scheme_is_the_classic_bound():
    # U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for every layer, whatever its shape.
    for shape in [(64, 32), (3, 3, 16, 8)]:
        fan_in = math.prod(shape[:-1])
        d = jaxinit.describe(cmp.SCHEMES["uniform"].build("relu"), shape)
        assert d.distribution == "uniform"
        assert d.bounds == pytest.approx((-(fan_in**-0.5), fan_in**-0.5), rel=1e-6)


@pytest.mark.parametrize(
    ("changes", "option"),
    [
        ({"depth": 0}, "--depth"),
        ({"width": -3}, "--width"),
        ({"steps": 1.5}, "--steps"),
        ({"steps": 0}, "--steps"),
        ({"seeds": 0}, "--seeds"),
        ({"lr": math.nan}, "--lr"),
        ({"lr": 0.0}, "--lr"),
        ({"momentum": 1.0}, "--momentum"),
        ({"arch": "rnn"}, "--arch"),
        ({"optimizer": "lbfgs"}, "--optimizer"),
        ({"activation": "nope"}, "--activation"),
        ({"metric": "f1"}, "--metric"),
        ({"schemes": ("he", "nope")}, "--schemes"),
        ({"schemes": ()}, "--schemes"),
        ({"schemes": ("he", "he")}, "--schemes"),
        ({"test_fraction": 1.0}, "--test-fraction"),
        ({"seed": -1}, "--seed"),
        ({"model": "m.py:f"}, "--data"),
        ({"data": "m:load"}, "--model"),
        ({"loss": "m:loss"}, "--loss"),
        ({"model": "no_colon", "data": "m:f"}, "--model"),
        ({"model": "m:f", "data": "m:g", "schemes": ("he", "lsuv")}, "--schemes"),
        ({"text": __file__}, "--text"),  # only with --arch gpt
        ({"arch": "gpt", "text": "/no/such/file.txt"}, "--text"),
    ],
)
def test_bad_config_names_the_option(changes, option):
    with pytest.raises(ValueError, match=option):
        cmp.CompareConfig(**changes)


def test_cli_options_are_the_config_fields(capsys):
    # Every field is an option, with the field's default; parsing gives the config back.
    _, parser = cli.build_parser()
    args = parser.parse_args(["--depth", "7", "--schemes", "he, xavier", "--seeds", "5"])
    config = cmp.from_args(args)
    assert config == dataclasses.replace(cmp.CompareConfig(), depth=7, seeds=5,
                                         schemes=("he", "xavier"))
    with pytest.raises(SystemExit) as exc:
        cli.main(["compare", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for f in dataclasses.fields(cmp.CompareConfig):
        assert "--" + f.name.replace("_", "-") in text
    for option in ("--out", "--no-plots", "--no-progress"):
        assert option in text
    for scheme in cmp.SCHEMES:
        assert scheme in text
    assert "default: 30" in text and "default: 3)" in text  # defaults are shown


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare", "--arch", "rnn"], "--arch"),
        (["compare", "--depth", "0"], "--depth=0: expected a positive integer"),
        (["compare", "--depth", "ten"], "--depth"),
        (["compare", "--steps", "-5"], "--steps=-5: expected a positive integer"),
        (["compare", "--seeds", "0"], "--seeds=0: expected a positive integer"),
        (["compare", "--lr", "-1"], "--lr"),
        (["compare", "--lr", "inf"], "--lr"),
        (["compare", "--momentum", "1.5"], "--momentum"),
        (["compare", "--schemes", "he,kaiming_magic"], "unknown: kaiming_magic"),
        (["compare", "--optimizer", "lbfgs"], "--optimizer"),
        (["compare", "--metric", "f1"], "--metric='f1'"),
        (["--depth", "0"], "--depth"),  # no subcommand: the compare options
        (["frobnicate"], "invalid choice"),
    ],
)
def test_cli_bad_options_exit_2_with_a_clear_message(argv, message, capsys, tmp_path):
    # Malformed options are argparse's (usage, then the error); bad values are the
    # config's: one line naming the option.
    out = tmp_path / "out"
    try:
        code = cli.main([*argv, "--out", str(out)] if argv[0] != "frobnicate" else argv)
    except SystemExit as e:
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err.splitlines()[-1]
    if "expected" in message:
        assert err.count("\n") == 1, err
    assert not out.exists()


def test_cli_out_must_be_a_folder(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("")
    assert cli.main(["compare", "--out", str(target)]) == 2
    assert capsys.readouterr().err == (f"jaxinit compare: error: --out={str(target)!r}: "
                                       "exists and is not a folder\n")


def _conv_same(x, k):
    """3x3 'SAME' convolution in float64 NumPy: x (n, h, w, c), k (3, 3, c, o)."""
    n, h, w, _ = x.shape
    pad = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((n, h, w, k.shape[-1]))
    for i in range(3):
        for j in range(3):
            out += pad[:, i:i + h, j:j + w, :] @ k[i, j]
    return out


def test_resnet_is_a_residual_stack():
    """The resnet's logits against a float64 NumPy forward pass of the same parameters:
    stem conv, then x + conv2(relu(conv1(relu(x)))) per block, relu, mean pool, head."""
    config = cmp.CompareConfig(arch="resnet", depth=2, width=4, steps=4, seeds=2,
                               schemes=("he",), batch_size=16, probe_batch=16,
                               jacobian_examples=1)
    model = cmp.make_model(config, jaxinit.he_normal())
    x = np.asarray(jax.random.normal(jax.random.key(0), (3, 8, 8, 1)))
    params = model.init(jax.random.key(1), x)["params"]
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    relu = lambda a: np.maximum(a, 0)
    h = _conv_same(x.astype(np.float64), p["stem"]["kernel"]) + p["stem"]["bias"]
    for i in range(2):
        block = p[f"layer{i}"]
        y = _conv_same(relu(h), block["conv1"]["kernel"]) + block["conv1"]["bias"]
        h = h + _conv_same(relu(y), block["conv2"]["kernel"]) + block["conv2"]["bias"]
    logits = relu(h).mean(axis=(1, 2)) @ p["head"]["kernel"] + p["head"]["bias"]
    np.testing.assert_allclose(np.asarray(model.apply({"params": params}, x)), logits,
                               rtol=1e-4, atol=1e-5)
    (he,) = _tiny("resnet", "he").runs
    assert he.layers[:3] == ("stem", "layer0/conv1", "layer0/conv2")
    assert he.curves.shape == (2, 4) and np.isfinite(he.curves).all()
