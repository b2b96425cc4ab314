"""compute_fans and einsum_axes on hand-computed cases, and their exact error messages.

These tests kill mutants of jaxinit/_src/core/fans.py (see docs/mutants.md).
"""

import pytest

import jaxinit


@pytest.mark.parametrize(
    "shape, axes, want",
    [
        ((3, 5), {}, (3, 5)),
        ((2, 3, 5, 7), {}, (2 * 3 * 5, 2 * 3 * 7)),  # HWIO: receptive field 6
        ((7, 5, 3, 2), {"in_axis": 1, "out_axis": 0}, (5 * 6, 7 * 6)),  # OIHW
        ((4, 3, 5), {"batch_axis": 0}, (3, 5)),
        ((4, 3, 5), {"batch_axis": -3}, (3, 5)),  # -rank is in range
        ((2, 3, 5, 7), {"in_axis": (0, 1), "out_axis": (2, 3)}, (6, 35)),
        ((2, 3, 5, 7), {"in_axis": (-4, 1), "out_axis": 3}, (6 * 5, 7 * 5)),
        ((6,), {"in_axis": (), "out_axis": 0}, (1, 6)),  # rank 1 with explicit axes
        ((6,), {"in_axis": 0, "out_axis": ()}, (6, 1)),
        ((0, 4), {}, (0, 4)),
        ((2, 3, 5), {"in_axis": 0, "out_axis": 1, "batch_axis": ()}, (10, 15)),
    ],
)
def test_compute_fans_table(shape, axes, want):
    got = jaxinit.compute_fans(shape, **axes)
    assert got == want
    assert all(type(v) is int for v in got)


def test_compute_fans_rank_error_only_for_the_default_in_axis():
    with pytest.raises(
        ValueError,
        match=r"^compute_fans: shape=\(5,\) has rank 1; fans need rank >= 2 "
        r"\(or pass in_axis and out_axis explicitly\)$",
    ):
        jaxinit.compute_fans((5,))
    # Any other in_axis skips the rank check: here in_axis=-1 and out_axis=-1 both name axis 0.
    with pytest.raises(ValueError, match="overlap"):
        jaxinit.compute_fans((5,), in_axis=-1)


@pytest.mark.parametrize(
    "axes, arg, shown",
    [
        ({"in_axis": 3}, "in_axis", "3"),
        ({"in_axis": -4}, "in_axis", "-4"),
        ({"out_axis": (0, 3)}, "out_axis", r"\(0, 3\)"),
        ({"batch_axis": -4}, "batch_axis", "-4"),
    ],
)
def test_compute_fans_axis_out_of_range(axes, arg, shown):
    msg = rf"^compute_fans: {arg}={shown} is out of range for a rank-3 shape$"
    with pytest.raises(ValueError, match=msg):
        jaxinit.compute_fans((2, 3, 4), **axes)


def test_compute_fans_overlap_message():
    msg = (
        r"^compute_fans: in_axis=0, out_axis=-1 and batch_axis=\(0,\) overlap for shape "
        r"\(2, 3, 4\)$"
    )
    with pytest.raises(ValueError, match=msg):
        jaxinit.compute_fans((2, 3, 4), in_axis=0, out_axis=-1, batch_axis=(0,))
    with pytest.raises(ValueError, match="overlap"):
        jaxinit.compute_fans((2, 3, 4), in_axis=(1, -2))  # the same axis twice


def test_einsum_axes_operands():
    # Three operands, the kernel in the middle: d contracted with x, e shared with y.
    assert jaxinit.einsum_axes("bd,dfe,be->bf", operand=1) == {
        "in_axis": (0, 2), "out_axis": (1,), "batch_axis": ()
    }
    assert jaxinit.einsum_axes("bd,dfe,be->bf", operand=-2)["in_axis"] == (0, 2)
    # Upper-case indices are letters too; 'X' is an out axis of the kernel only.
    assert jaxinit.einsum_axes("bd,be,dX->bX") == {
        "in_axis": (0,), "out_axis": (1,), "batch_axis": ()
    }
    assert jaxinit.einsum_axes("...d,dX->...X") == {
        "in_axis": (0,), "out_axis": (1,), "batch_axis": ()
    }
    # Negative operand -2 of two operands is the first.
    assert jaxinit.einsum_axes("df,bd->bf", operand=-2) == {
        "in_axis": (0,), "out_axis": (1,), "batch_axis": ()
    }


@pytest.mark.parametrize(
    "spec, operand, error, match",
    [
        ("bd,dh", -1, ValueError,
         r"^einsum_axes: spec='bd,dh' must have exactly one '->' \(an explicit output\), "
         r"e\.g\. 'bd,dhk->bhk'$"),
        ("b->d->h", -1, ValueError, r"exactly one '->'"),
        ("dh->h", -1, ValueError,
         r"^einsum_axes: spec='dh->h' has one operand; a kernel needs an input too$"),
        ("bd,dh->bh", 2, ValueError,
         r"^einsum_axes: operand=2 is out of range for 2 operands in 'bd,dh->bh'$"),
        ("bd,dh->bh", -3, ValueError, r"operand=-3 is out of range"),
        ("bd,dh->b1", -1, ValueError,
         r"^einsum_axes: spec='bd,dh->b1' has an invalid term 'b1'; use letters and at most "
         r"one '\.\.\.'$"),
        ("......b,bh->h", -1, ValueError, r"invalid term '\.\.\.\.\.\.b'"),
        ("bd,d...->b", -1, ValueError,
         r"^einsum_axes: the kernel 'd\.\.\.' in spec='bd,d\.\.\.->b' cannot use '\.\.\.'$"),
        ("bd,->b", -1, ValueError,
         r"^einsum_axes: the kernel operand of spec='bd,->b' has no axes$"),
        ("bd,dd->b", -1, ValueError,
         r"^einsum_axes: the kernel 'dd' in spec='bd,dd->b' repeats an index$"),
        ("bd,dh->...h", -1, ValueError,
         r"^einsum_axes: the output of spec='bd,dh->\.\.\.h' has '\.\.\.' but no input "
         r"operand has$"),
        ("bd,dh->bzy", -1, ValueError,
         r"^einsum_axes: output indices \['y', 'z'\] of spec='bd,dh->bzy' appear in no operand$"),
    ],
)
def test_einsum_axes_error_messages(spec, operand, error, match):
    with pytest.raises(error, match=match):
        jaxinit.einsum_axes(spec, operand=operand)


def test_einsum_axes_type_error_message():
    with pytest.raises(
        TypeError, match=r"^einsum_axes: spec=3 must be a string such as 'bd,dhk->bhk'$"
    ):
        jaxinit.einsum_axes(3)


@pytest.mark.parametrize("arg", ["in_axis", "out_axis", "batch_axis"])
def test_compute_fans_non_int_axis_message(arg):
    msg = rf"^compute_fans: {arg}=1\.5 must be an int or a sequence of ints$"
    with pytest.raises(TypeError, match=msg):
        jaxinit.compute_fans((2, 3, 4), **{arg: 1.5})


def test_compute_fans_bad_shape_messages():
    msg = r"^compute_fans: shape=\[2\.0, 3\] must be a sequence of ints$"
    with pytest.raises(TypeError, match=msg):
        jaxinit.compute_fans([2.0, 3])
    msg = r"^compute_fans: shape=\(2, -3\) has a negative dimension$"
    with pytest.raises(ValueError, match=msg):
        jaxinit.compute_fans((2, -3))
