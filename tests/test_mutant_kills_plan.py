"""The load planner shared by `load_pretrained` and `stream_pretrained`, case by case.

These tests kill mutants of jaxinit/_src/pretrained/plan.py (see docs/mutants.md). Every
checkpoint is a small in-memory dict of NumPy arrays, and every expectation (which leaves
are loaded and from which keys, the report's fields, the exact error and warning texts)
is written out by hand from the documented behaviour.
"""

import re
import warnings

import jax
import numpy as np
import pytest
from flax import nnx

import jaxinit
from jaxinit import PretrainedError
from jaxinit._src.pretrained.report import Mismatch

SRC = "<in-memory dict>"  # the name open_weights gives an in-memory dict
TRANSPOSE = (" It is the transpose: a PyTorch Linear weight (out, in)? Pass "
             "transform=jaxinit.layout.linear.")


def arr(*values):
    return np.array(values, np.float32)


def zeros(*shape):
    return np.zeros(shape, np.float32)


def spec(*shape):
    return jax.ShapeDtypeStruct(shape, np.float32)


def full(message):
    """A `match=` pattern for exactly `message`."""
    return "^" + re.escape(message) + "$"


def start(message):
    """A `match=` pattern for a message that begins with `message` (the report follows)."""
    return "^" + re.escape(message)


# --- arguments ----------------------------------------------------------------------


@pytest.mark.parametrize("caller", ["load_pretrained", "stream_pretrained"])
@pytest.mark.parametrize("arg, choices", [("on_unexpected", "'ignore', 'warn', 'error'"),
                                          ("on_mismatch", "'ignore', 'warn', 'error'")])
def test_policy_choices_are_checked_by_name(caller, arg, choices):
    t = {"w": zeros(2)}
    with pytest.raises(ValueError, match=full(f"{caller}: {arg}='no' is not one of {choices}")):
        getattr(jaxinit, caller)(t, t, **{arg: "no"})


def test_on_missing_choices():
    t = {"w": zeros(2)}
    with pytest.raises(ValueError, match=full("load_pretrained: on_missing='no' is not one of "
                                              "'keep_init', 'warn', 'error'")):
        jaxinit.load_pretrained(t, t, on_missing="no")


def test_rules_are_checked_one_by_one():
    t = {"w": zeros(2)}
    good = ("w", "w", None)
    with pytest.raises(TypeError, match=full(
            "load_pretrained: rules[1]=('a', 'b') is not a (source_regex, target_template, "
            "transform_or_None) triple")):
        jaxinit.load_pretrained(t, t, rules=[good, ("a", "b")])
    with pytest.raises(TypeError, match=full("stream_pretrained: rules[1]='abc' is not a "
                                             "(source_regex, target_template, "
                                             "transform_or_None) triple")):
        jaxinit.stream_pretrained(t, t, rules=[good, "abc"])
    with pytest.raises(TypeError, match=r"rules\[0\]=\('a', 'b', None, None\) is not a"):
        jaxinit.load_pretrained(t, t, rules=[("a", "b", None, None)])
    with pytest.raises(TypeError, match=full("load_pretrained: rules[1] transform 3 is not "
                                             "callable")):
        jaxinit.load_pretrained(t, t, rules=[good, ("w", "w", 3)])
    with pytest.raises(ValueError, match=full(
            "load_pretrained: rules[1] pattern is not a valid regex: missing ), unterminated "
            "subpattern at position 0")):
        jaxinit.load_pretrained(t, t, rules=[good, ("(", "w", None)])
    with pytest.raises(ValueError, match=full(
            "load_pretrained: reinit pattern is not a valid regex: missing ), unterminated "
            "subpattern at position 0")):
        jaxinit.load_pretrained(t, t, reinit="(")
    # A rule may be a list, and its transform a callable object.
    out, report = jaxinit.load_pretrained(t, {"v": arr(1, 2)},
                                          rules=[["v", "w", lambda x: x * 2]])
    np.testing.assert_array_equal(out["w"], [2, 4])
    assert report.loaded == {"w": "v"}


def test_a_template_that_cannot_expand_names_the_key():
    t = {"w": zeros(2)}
    with pytest.raises(ValueError, match=full(r"load_pretrained: template '\\2' for key 'w': "
                                              "invalid group reference 2 at position 1")):
        jaxinit.load_pretrained(t, t, rules=[("w", r"\2", None)])
    with pytest.raises(ValueError, match=full(r"stream_pretrained: template '\\g<x>' for key "
                                              "'w': unknown group name 'x'")):
        jaxinit.stream_pretrained(t, t, rules=[("w", r"\g<x>", None)])


def test_a_target_leaf_that_is_not_an_array():
    for caller in ("load_pretrained", "stream_pretrained"):
        with pytest.raises(TypeError, match=full(f"{caller}: target leaf 'a/b' is a int, not "
                                                 "an array or jax.ShapeDtypeStruct")):
            getattr(jaxinit, caller)({"a": {"b": 3}}, {"w": zeros(2)})


# --- mapping keys to leaves ---------------------------------------------------------


def test_the_first_matching_rule_wins_and_unmatched_keys_map_to_themselves():
    target = {"a": zeros(2), "b": zeros(2), "c": zeros(2)}
    ckpt = {"x": arr(1, 2), "a": arr(3, 4), "y": arr(5, 6), "xc": arr(7, 8)}
    rules = [("x", "b", None), ("x", "c", None), ("y", None, None), ("y", "c", None),
             # fullmatch: "x" does not match "xc", this rule does
             ("x(c)", r"\1", None)]
    out, report = jaxinit.load_pretrained(target, ckpt, rules=rules, on_unexpected="error")
    assert report.loaded == {"a": "a", "b": "x", "c": "xc"}
    assert report.ignored == ["y"]
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    np.testing.assert_array_equal(out["a"], [3, 4])
    np.testing.assert_array_equal(out["b"], [1, 2])
    np.testing.assert_array_equal(out["c"], [7, 8])


def test_ignore_and_reinit_fullmatch_and_take_one_string():
    target = {"head": np.full(2, -1, np.float32), "head2": zeros(2), "body": zeros(2)}
    ckpt = {"extra": arr(0, 0), "head": arr(1, 2), "head2": arr(3, 4), "extra_b": arr(5),
            "xextra": arr(6)}
    out, report = jaxinit.load_pretrained(target, ckpt, ignore="extra", reinit="head",
                                          on_unexpected="ignore")
    assert report.ignored == ["extra"]
    assert report.unexpected == ["extra_b", "xextra"]
    assert report.reinit == ["head"]
    assert report.loaded == {"head2": "head2"}
    assert report.missing == ["body"]
    np.testing.assert_array_equal(out["head"], [-1, -1])  # kept: matched by reinit
    np.testing.assert_array_equal(out["head2"], [3, 4])
    _, report = jaxinit.load_pretrained(target, ckpt, ignore=["extra", "x.*"],
                                        reinit=["head", "b.*"], on_unexpected="ignore")
    assert report.ignored == ["extra", "xextra"] and report.unexpected == ["extra_b"]
    assert report.reinit == ["body", "head"] and report.missing == []


def test_report_source_and_collections():
    variables = {"params": {"w": zeros(2)}, "batch_stats": {"m": zeros(2)}}
    _, report = jaxinit.load_pretrained(variables, {"params/w": arr(1, 2)})
    assert report.source == SRC
    assert report.collections == ("params", "batch_stats")
    assert report.is_loaded("w") and not report.is_loaded("m")
    assert report.missing == ["batch_stats/m"]
    _, report = jaxinit.load_pretrained({"w": zeros(2)}, {"w": arr(1, 2)})
    assert report.collections == ()
    _, report = jaxinit.load_pretrained([zeros(2)], {"0": arr(1, 2)})
    assert report.collections == () and report.loaded == {"0": "0"}
    _, report = jaxinit.stream_pretrained({"params": {"w": spec(2)}}, {"params/w": arr(1, 2)})
    assert type(report) is jaxinit.StreamReport and report.source == SRC
    assert report.collections == ("params",) and report.loaded == {"params/w": "params/w"}


def test_a_transform_returning_a_mapping_fills_entries_under_the_template():
    target = {"attn": {"k": zeros(1), "q": zeros(2)}, "o": zeros(3)}

    def split(w):
        return {"q": w[:2], "k": w[2:3], "v": w[3:]}

    ckpt = {"qkv": arr(1, 2, 3, 4), "old": arr(5, 6, 7), "new": arr(8), "extra": arr(9)}
    rules = [("qkv", "attn", split), ("old", "o", None), ("new", "nope", None)]
    out, report = jaxinit.load_pretrained(target, ckpt, rules=rules, on_unexpected="ignore")
    assert report.loaded == {"attn/k": "qkv", "attn/q": "qkv", "o": "old"}
    assert report.unexpected == ["extra", "new -> nope", "qkv -> attn/v"]  # key order
    np.testing.assert_array_equal(out["attn"]["q"], [1, 2])
    np.testing.assert_array_equal(out["attn"]["k"], [3])
    np.testing.assert_array_equal(out["o"], [5, 6, 7])


def test_reinit_keys_are_skipped_before_any_check():
    # A key for a reinit leaf is neither loaded nor checked: its wrong shape, a clash with
    # another key, or the slices of a stacked leaf left unfilled are no error.
    target = {"s": np.full((3, 2), -1, np.float32), "w": np.full(2, -1, np.float32)}
    ckpt = {"l.0.w": arr(1, 2), "w": arr(1, 2, 3), "v": arr(4, 5, 6)}
    rules = [(r"l\.(\d+)\.w", r"s[\1]", None), ("v", "w", None)]
    out, report = jaxinit.load_pretrained(target, ckpt, rules=rules, reinit=["s", "w"],
                                          on_unexpected="error", on_missing="error")
    assert report.reinit == ["s", "w"]
    assert report.loaded == {} and report.missing == [] and report.mismatched == []
    np.testing.assert_array_equal(out["s"], np.full((3, 2), -1))
    np.testing.assert_array_equal(out["w"], [-1, -1])


def test_two_keys_for_one_leaf_or_slice():
    t = {"s": zeros(2, 2)}

    def clash(where, ckpt):
        first, second = ckpt  # in key order
        return pytest.raises(PretrainedError, match=full(
            f"{SRC}: keys {first!r} and {second!r} both map to target {where!r}; fix the "
            "rules"))

    two = {"a": zeros(2, 2), "b": zeros(2, 2)}
    with clash("s", two):
        jaxinit.load_pretrained(t, two, rules=[("[ab]", "s", None)])
    rows = {"a": zeros(2), "b": zeros(2)}
    with clash("s[1]", rows):
        jaxinit.load_pretrained(t, rows, rules=[("[ab]", "s[1]", None)])
    whole_then_row = {"a": zeros(2, 2), "b": zeros(2)}
    with clash("s[0]", whole_then_row):
        jaxinit.load_pretrained(t, whole_then_row, rules=[("a", "s", None), ("b", "s[0]", None)])
    row_then_whole = {"a": zeros(2), "b": zeros(2, 2)}
    with clash("s", row_then_whole):
        jaxinit.stream_pretrained(t, row_then_whole,
                                  rules=[("a", "s[0]", None), ("b", "s", None)])
    # A mismatched key still claims its leaf.
    bad_then_good = {"a": zeros(3), "b": zeros(2, 2)}
    with clash("s", bad_then_good):
        jaxinit.load_pretrained(t, bad_then_good, rules=[("[ab]", "s", None)],
                                on_mismatch="ignore")


# --- shapes and policies ------------------------------------------------------------


def test_a_mismatch_is_reported_claimed_and_kept():
    target = {"w": np.full((3, 2), -1, np.float32), "b": zeros(2)}
    ckpt = {"w": zeros(2, 3), "b": arr(1, 2)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, report = jaxinit.load_pretrained(target, ckpt, on_mismatch="ignore")
    assert caught == []
    assert report.mismatched == [Mismatch("w", "w", (2, 3), (3, 2), TRANSPOSE)]
    assert report.missing == [] and report.loaded == {"b": "b"}
    np.testing.assert_array_equal(out["w"], np.full((3, 2), -1))
    np.testing.assert_array_equal(out["b"], [1, 2])


def test_policy_errors_and_warnings_list_every_problem_in_order():
    target = {"a": zeros(2), "b": zeros(2), "c": zeros(2)}
    ckpt = {"b": zeros(3), "c": arr(1, 2), "x": zeros(1), "y": zeros(1)}
    kinds = "1 missing, 2 unexpected, 1 shape-mismatched entries"
    with pytest.raises(PretrainedError, match=start(
            f"{SRC}: {kinds}; nothing was loaded\nLoadReport for {SRC}: 0 loaded, 1 missing, "
            "2 unexpected, 0 ignored, 0 reinit, 1 shape-mismatched, 0 cast")):
        jaxinit.load_pretrained(target, ckpt, on_missing="error", on_unexpected="error",
                                on_mismatch="error")
    # Only the problems set to "error" are listed, and nothing is warned about.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(PretrainedError, match=start(f"{SRC}: 2 unexpected entries; "
                                                        "nothing was loaded\n")):
            jaxinit.load_pretrained(target, ckpt, on_missing="warn", on_unexpected="error",
                                    on_mismatch="warn")
        with pytest.raises(PretrainedError, match=start(f"{SRC}: 1 missing, 1 "
                                                        "shape-mismatched entries; nothing")):
            jaxinit.load_pretrained(target, ckpt, on_missing="error", on_unexpected="warn",
                                    on_mismatch="error")
    assert caught == []
    with pytest.warns(jaxinit.LoadWarning) as caught:
        out, report = jaxinit.load_pretrained(target, ckpt, on_missing="warn",
                                              on_unexpected="warn", on_mismatch="warn")
    (warning,) = caught
    assert str(warning.message).startswith(f"{SRC}: {kinds}\nLoadReport for {SRC}: 0 loaded")
    assert report.loaded == {"c": "c"} and report.missing == ["a"]
    assert report.unexpected == ["x", "y"]
    np.testing.assert_array_equal(out["c"], [1, 2])
    with pytest.warns(jaxinit.LoadWarning, match=start(f"{SRC}: 2 unexpected entries\n")):
        jaxinit.load_pretrained(target, ckpt, on_missing="keep_init", on_unexpected="warn",
                                on_mismatch="ignore")
    with pytest.warns(jaxinit.LoadWarning) as caught:
        jaxinit.stream_pretrained(target, ckpt, on_unexpected="ignore", on_mismatch="warn")
    (warning,) = caught
    assert str(warning.message).startswith(f"{SRC}: 1 shape-mismatched entries\nLoadReport")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, report = jaxinit.load_pretrained(target, ckpt, on_missing="keep_init",
                                            on_unexpected="ignore", on_mismatch="ignore")
    assert caught == [] and report.missing == ["a"]


def test_every_abstract_leaf_must_be_filled():
    target = {k: spec(2) for k in "abcdef"}
    with pytest.raises(PretrainedError, match=start(
            f"{SRC}: 6 abstract target leaves would stay unfilled (first: ['a', 'b', 'c', "
            "'d', 'e']); the checkpoint must provide every abstract leaf, or build those "
            f"parameters concretely\nLoadReport for {SRC}: 0 loaded, 6 missing, 1 unexpected")):
        jaxinit.load_pretrained(target, {"g": arr(1, 2)}, on_unexpected="ignore")
    # A mismatched abstract leaf is not filled either; concrete leaves may stay as they are.
    target = {"a": spec(2), "b": spec(2), "c": zeros(2)}
    ckpt = {"a": arr(1, 2), "b": arr(1, 2, 3)}
    with pytest.raises(PretrainedError, match=start(
            f"{SRC}: 1 abstract target leaves would stay unfilled (first: ['b']);")):
        jaxinit.load_pretrained(target, ckpt, on_mismatch="ignore")
    with pytest.raises(PretrainedError, match=start(
            f"{SRC}: 1 abstract target leaves would stay unfilled (first: ['b']);")):
        jaxinit.stream_pretrained(target, ckpt, on_mismatch="ignore")
    out, report = jaxinit.load_pretrained({"a": spec(2), "c": zeros(2)}, ckpt,
                                          on_mismatch="ignore", on_unexpected="ignore")
    assert report.loaded == {"a": "a"} and report.missing == ["c"]
    assert isinstance(out["a"], jax.Array)
    np.testing.assert_array_equal(out["a"], [1, 2])
    # The policies are enforced first.
    with pytest.raises(PretrainedError, match=start(f"{SRC}: 1 missing entries; nothing")):
        jaxinit.load_pretrained({"a": spec(2), "c": spec(2)}, ckpt, on_missing="error",
                                on_mismatch="ignore", on_unexpected="ignore")


# --- transforms -----------------------------------------------------------------------


class Reverse:
    """A transform that needs NumPy data (jax.eval_shape cannot trace it)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, w):
        w = np.asarray(w)  # raises on a tracer
        self.calls += 1
        return w[::-1].copy()

    def __repr__(self):
        return "Reverse()"


class Halves(Reverse):
    def __call__(self, w):
        w = super().__call__(w)[::-1]
        return {"lo": w[:1], "hi": w[1:]}

    def __repr__(self):
        return "Halves()"


class Boom:
    def __call__(self, w):
        raise ValueError("boom")

    def __repr__(self):
        return "Boom()"


def test_an_untraceable_transform_is_applied_once_by_load_and_refused_by_stream():
    reverse = Reverse()
    target = {"w": zeros(3)}
    out, report = jaxinit.load_pretrained(target, {"v": arr(1, 2, 3)},
                                          rules=[("v", "w", reverse)])
    assert reverse.calls == 1  # planning read and converted it; the load reused that
    assert report.loaded == {"w": "v"}
    np.testing.assert_array_equal(out["w"], [3, 2, 1])
    halves = Halves()
    target = {"w": {"lo": zeros(1), "hi": zeros(2)}}
    out, report = jaxinit.load_pretrained(target, {"v": arr(1, 2, 3)},
                                          rules=[("v", "w", halves)])
    assert halves.calls == 1 and report.loaded == {"w/hi": "v", "w/lo": "v"}
    np.testing.assert_array_equal(out["w"]["lo"], [1])
    np.testing.assert_array_equal(out["w"]["hi"], [2, 3])
    # Shapes planned from the converted data are checked like any others.
    with pytest.raises(PretrainedError, match=re.escape("v (2,) -> w/hi (3,)")):
        jaxinit.load_pretrained({"w": {"lo": zeros(1), "hi": zeros(3)}}, {"v": arr(1, 2, 3)},
                                rules=[("v", "w", Halves())])
    with pytest.raises(PretrainedError, match=full(
            f"{SRC}: the transform Reverse() for key 'v' cannot be traced by jax.eval_shape, "
            "so its output shapes are unknown before reading; use jaxinit.load_pretrained "
            "for it")):
        jaxinit.stream_pretrained({"w": spec(3)}, {"v": arr(1, 2, 3)},
                                  rules=[("v", "w", Reverse())])


def test_a_failing_transform_names_the_key_and_shape():
    with pytest.raises(PretrainedError, match=full(
            f"{SRC}: transform Boom() failed on key 'v' of shape (3,): ValueError: boom")):
        jaxinit.load_pretrained({"w": zeros(3)}, {"v": arr(1, 2, 3)}, rules=[("v", "w", Boom())])


# --- stacked (scanned) leaves -------------------------------------------------------


STACK = [(r"l\.(\d+)\.w", r"s[\1]", None)]


def test_slices_stack_in_index_order_whatever_the_checkpoint_order():
    # An in-memory checkpoint lists its keys sorted: down, mid, up.
    ckpt = {"up": arr(0, 1), "mid": arr(2, 3), "down": arr(4, 5)}
    rules = [("up", "s[0]", None), ("mid", "s[1]", None), ("down", "s[2]", None)]
    want = [[0, 1], [2, 3], [4, 5]]
    out, report = jaxinit.load_pretrained({"s": zeros(3, 2)}, ckpt, rules=rules,
                                          on_missing="error", on_unexpected="error")
    np.testing.assert_array_equal(out["s"], want)
    assert report.loaded == {"s": "up, mid, down"} and report.ok
    out, report = jaxinit.stream_pretrained({"s": spec(3, 2)}, ckpt, rules=rules,
                                            on_unexpected="error")
    np.testing.assert_array_equal(out["s"], want)
    assert report.loaded == {"s": "up, mid, down"} and report.ok


def test_two_leading_axes_and_scalar_slices():
    ckpt = {f"e.{i}.{j}": arr(10 * i + j, -(10 * i + j), 7) for i, j in
            [(1, 1), (0, 1), (1, 0), (0, 0)]}
    rules = [(r"e\.(\d)\.(\d)", r"s[\1,\2]", None)]
    out, report = jaxinit.load_pretrained({"s": zeros(2, 2, 3)}, ckpt, rules=rules)
    np.testing.assert_array_equal(out["s"], [[[0, 0, 7], [1, -1, 7]],
                                             [[10, -10, 7], [11, -11, 7]]])
    assert report.loaded == {"s": "e.0.0, e.0.1, e.1.0, e.1.1"}
    # As many indices as the leaf has axes: each key is one scalar.
    scalars = {"l.0.w": np.float32(5), "l.1.w": np.float32(6), "l.2.w": np.float32(7)}
    out, report = jaxinit.load_pretrained({"s": zeros(3)}, scalars, rules=STACK)
    np.testing.assert_array_equal(out["s"], [5, 6, 7])
    assert report.loaded == {"s": "l.0.w, l.1.w, l.2.w"}


def test_a_missing_slice_names_the_key_that_would_fill_it():
    def missing(key, shape, lead, index):
        return pytest.raises(PretrainedError, match=full(
            f"{SRC}: key {key!r} is missing: target 's' of shape {shape} stacks {lead} "
            f"slices and [{index}] has no key"))

    with missing("l.2.w", (3, 2), (3,), "2"):
        jaxinit.load_pretrained({"s": zeros(3, 2)}, {"l.0.w": arr(0, 1), "l.1.w": arr(2, 3)},
                                rules=STACK)
    with missing("l.0.w", (3, 2), (3,), "0"):
        jaxinit.stream_pretrained({"s": spec(3, 2)}, {"l.2.w": arr(0, 1), "l.1.w": arr(2, 3)},
                                  rules=STACK)
    # The first key's numbers are swapped left to right; numbers that are not its slice
    # index are skipped.
    ckpt = {"a2.0.1": zeros(3), "b.0.0": zeros(3), "b.1.1": zeros(3)}
    with missing("a2.1.0", (2, 2, 3), (2, 2), "1,0"):
        jaxinit.load_pretrained({"s": zeros(2, 2, 3)}, ckpt,
                                rules=[(r"a2\.(\d)\.(\d)", r"s[\1,\2]", None),
                                       (r"b\.(\d)\.(\d)", r"s[\1,\2]", None)])
    # A key without its slice index among its numbers is named with the slice.
    with missing("x7 at slice [2]", (3,), (3,), "2"):
        jaxinit.load_pretrained({"s": zeros(3)}, {"x7": np.float32(1), "y": np.float32(2)},
                                rules=[("x7", "s[0]", None), ("y", "s[1]", None)])
    with missing("a at slice [1]", (2,), (2,), "1"):
        jaxinit.load_pretrained({"s": zeros(2)}, {"a": np.float32(1)},
                                rules=[("a", "s[0]", None)])


def test_one_leaf_indexed_with_different_depths():
    with pytest.raises(PretrainedError, match=full(
            f"{SRC}: target 's' is indexed with both [1, 2] leading axes; fix the rules")):
        jaxinit.load_pretrained({"s": zeros(2, 2, 2)}, {"a": zeros(2, 2), "b": zeros(2)},
                                rules=[("a", "s[0]", None), ("b", "s[1,0]", None)])


def test_a_slice_index_out_of_range():
    def out_of_range(key, where, shape):
        return pytest.raises(PretrainedError, match=full(
            f"{SRC}: key {key!r} -> {where}: index out of range for the stacked target of "
            f"shape {shape}"))

    ckpt = {"l.0.w": arr(0, 1), "l.3.w": arr(2, 3)}
    with out_of_range("l.3.w", "s[3]", (3, 2)):
        jaxinit.load_pretrained({"s": zeros(3, 2)}, ckpt, rules=STACK)
    with out_of_range("l.3.w", "s[3]", (3, 2)):
        jaxinit.stream_pretrained({"s": spec(3, 2)}, ckpt, rules=STACK)
    with out_of_range("k", "s[0,2]", (3, 2, 1)):
        jaxinit.load_pretrained({"s": zeros(3, 2, 1)}, {"k": zeros(1)},
                                rules=[("k", "s[0,2]", None)])
    with out_of_range("k", "s[0,0]", (2,)):
        jaxinit.load_pretrained({"s": zeros(2)}, {"k": np.float32(0)},
                                rules=[("k", "s[0,0]", None)])


def test_unexpected_slices_are_reported_with_their_index():
    ckpt = {"l.0.w": zeros(2), "e.0.1": zeros(2)}
    rules = [(r"l\.(\d+)\.w", r"nope[\1]", None), (r"e\.(\d)\.(\d)", r"nope[\1,\2]", None)]
    _, report = jaxinit.load_pretrained({"s": zeros(2)}, ckpt, rules=rules,
                                        on_unexpected="ignore")
    assert report.unexpected == ["e.0.1 -> nope[0, 1]", "l.0.w -> nope[0]"]
    assert report.missing == ["s"]
    # Only digits and commas index: anything else is part of the path.
    _, report = jaxinit.load_pretrained({"s": zeros(2)}, {"k": zeros(2)},
                                        rules=[("k", "s[0, 1]", None)], on_unexpected="ignore")
    assert report.unexpected == ["k -> s[0, 1]"]


def test_a_mismatched_slice_keeps_the_whole_stacked_leaf():
    target = {"s": np.full((3, 2, 3), -1, np.float32), "b": zeros(1)}
    ckpt = {"l.0.w": zeros(2, 3), "l.1.w": zeros(3, 2), "b": arr(4)}
    # The stack is incomplete too (no l.2.w): with a mismatched slice that is no error.
    out, report = jaxinit.load_pretrained(target, ckpt, rules=STACK, on_mismatch="ignore",
                                          on_missing="error")
    assert report.mismatched == [Mismatch("l.1.w", "s[1]", (3, 2), (2, 3), TRANSPOSE)]
    assert report.loaded == {"b": "b"} and report.missing == []
    np.testing.assert_array_equal(out["s"], np.full((3, 2, 3), -1))
    np.testing.assert_array_equal(out["b"], [4])
    out, report = jaxinit.stream_pretrained(target, ckpt, rules=STACK, on_mismatch="ignore")
    assert report.loaded == {"b": "b"} and report.missing == []
    assert report.mismatched == [Mismatch("l.1.w", "s[1]", (3, 2), (2, 3), TRANSPOSE)]
    with pytest.raises(PretrainedError, match=re.escape("l.1.w (3, 2) -> s[1] (2, 3)")):
        jaxinit.load_pretrained(target, ckpt, rules=STACK)


# --- targets ------------------------------------------------------------------------


def test_nnx_state_and_module_targets():
    layer = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
    state = nnx.state(layer)
    bias = np.array(layer.bias[...])
    kernel = np.arange(6, dtype=np.float32).reshape(2, 3)
    out, report = jaxinit.load_pretrained(state, {"kernel": kernel})
    assert isinstance(out, nnx.State)
    assert report.loaded == {"kernel": "kernel"} and report.missing == ["bias"]
    np.testing.assert_array_equal(out["kernel"][...], kernel)
    np.testing.assert_array_equal(out["bias"][...], bias)
    assert not np.array_equal(np.asarray(layer.kernel[...]), kernel)  # the state is a copy
    # A module whose checkpoint fills nothing is returned as it was.
    same, report = jaxinit.load_pretrained(layer, {"other": kernel}, on_unexpected="ignore")
    assert same is layer and report.loaded == {} and report.missing == ["bias", "kernel"]
    np.testing.assert_array_equal(layer.bias[...], bias)
