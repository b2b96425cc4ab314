"""The schemes, architectures, optimizers and activations `jaxinit compare` offers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from jaxinit._src.core.gain import ACTIVATIONS, gain
from jaxinit._src.schemes.orthogonal import orthogonal
from jaxinit._src.schemes.standard import (
    glorot_normal,
    glorot_uniform,
    he_normal,
    he_uniform,
    lecun_normal,
    lecun_uniform,
    normal,
    variance_scaling,
)


@dataclasses.dataclass(frozen=True)
class Scheme:
    """A named initialization scheme of the comparison.

    Attributes:
      name: the name used on the command line.
      summary: the formula and where it comes from.
      build: activation name -> kernel initializer (orthogonal uses the activation's gain).
      lsuv: whether :func:`jaxinit.lsuv` rescales the layers after ``build``'s init.
    """

    name: str
    summary: str
    build: Callable[[str], Any]
    lsuv: bool = False


def _orthogonal(activation: str) -> Any:
    return orthogonal(gain(activation))


SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme("random", "N(0, 0.01^2): small random numbers (the seed's 'random')",
               lambda a: normal(0.01)),
        # U(-1/sqrt(n), 1/sqrt(n)) has variance 1/(3n): variance_scaling(1/3, fan_in, uniform).
        Scheme("uniform", "U(+-1/sqrt(fan_in)): the classic heuristic, PyTorch's default",
               lambda a: variance_scaling(1 / 3, "fan_in", "uniform")),
        Scheme("xavier", "Glorot & Bengio 2010: U, Var = 2/(fan_in+fan_out)",
               lambda a: glorot_uniform()),
        Scheme("xavier_normal", "Glorot & Bengio 2010: truncated N, Var = 2/(fan_in+fan_out)",
               lambda a: glorot_normal()),
        Scheme("he", "He et al. 2015: truncated N, Var = 2/fan_in", lambda a: he_normal()),
        Scheme("he_uniform", "He et al. 2015: U, Var = 2/fan_in", lambda a: he_uniform()),
        Scheme("lecun", "LeCun et al. 1998: truncated N, Var = 1/fan_in",
               lambda a: lecun_normal()),
        Scheme("lecun_uniform", "LeCun et al. 1998: U, Var = 1/fan_in",
               lambda a: lecun_uniform()),
        Scheme("orthogonal", "Saxe et al. 2014: orthogonal x gain(activation)", _orthogonal),
        Scheme("lsuv", "Mishkin & Matas 2016: orthonormal, then unit output variance "
               "per layer on a data batch (built-in architectures only)", _orthogonal,
               lsuv=True),
    )
}
DEFAULT_SCHEMES = ("random", "uniform", "xavier", "he", "lecun", "orthogonal", "lsuv")
ARCHS = ("mlp", "cnn", "resnet", "vit", "gpt")
OPTIMIZERS = ("sgd", "adam")
# Activations offered on the command line: those jaxinit.gain knows by name, minus the
# aliases and the periodic ones (no sensible deep network).
CLI_ACTIVATIONS = tuple(
    a for a in ACTIVATIONS if a not in ("identity", "swish", "sin", "cos", "gelu_tanh")
)
