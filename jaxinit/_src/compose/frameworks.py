"""jaxinit schemes in other JAX frameworks: Equinox modules and Keras 3 (JAX backend)."""

from __future__ import annotations

import functools
from typing import Any

import jax

from jaxinit._src.compose.combinators import channels_first
from jaxinit._src.compose.tree import Rules, _compile_rules, reinit
from jaxinit._src.core.base import check_int


def equinox_init(model: Any, key: jax.Array, rules: Rules, *, strict: bool = True) -> Any:
    r"""Re-initializes an ``equinox.Module`` by path rules, in Equinox's weight layout.

    Equinox stores ``Linear`` weights as ``(out, in)`` and convolutions as
    ``(out, in, *kernel)``, PyTorch's layout. Each rule's initializer is written for Flax's
    layout, as everywhere in jaxinit, and applied through :func:`jaxinit.channels_first`,
    so ``he_normal`` divides by the true fan_in. Paths join the module's attribute names
    and indices with '/' (``layers/0/weight``); matching, per-leaf keys and ``strict`` are
    those of :func:`jaxinit.reinit`. The result is a new module of the same type (the
    arrays replaced out of place, as ``eqx.tree_at`` would).

    Equinox stores a convolution's bias as ``(out, 1, ..., 1)`` (broadcast over the
    spatial axes): a leaf named ``bias`` of that shape is given to its initializer as the
    vector ``(out,)`` and reshaped back, so ``zeros`` fills it and a fan-based scheme
    raises its usual rank error instead of reading fan_in = 1 off the trailing ones.

    Args:
      model: an ``equinox.Module`` (or any pytree of out-first weights).
      key: a PRNG key.
      rules: ``[(pattern, initializer), ...]``, as for :func:`jaxinit.reinit`.
      strict: as for :func:`jaxinit.reinit`: every rule must match a leaf.

    Returns:
      The re-initialized module.

    Example:
      >>> import jax, equinox as eqx, jaxinit
      >>> mlp = eqx.nn.MLP(16, 4, 64, depth=2, key=jax.random.key(0))
      >>> mlp = jaxinit.equinox_init(mlp, jax.random.key(1), [
      ...     (r".*/weight", jaxinit.he_normal()), (r".*/bias", jaxinit.zeros)])
      >>> mlp.layers[0].weight.shape, float(abs(mlp.layers[0].bias).max())
      ((64, 16), 0.0)
    """
    from jaxinit._src.compose.paths import path_str

    wrapped = []
    for i, (pattern, init) in enumerate(_compile_rules(rules)):
        if hasattr(init, "for_leaf"):
            raise TypeError(
                f"equinox_init: rules[{i}] initializer {init!r} sizes itself from its "
                "neighbours' Flax-layout shapes (for_leaf); use jaxinit.reinit with "
                "out-first rules instead"
            )
        wrapped.append((pattern, channels_first(init)))
    shapes: dict[str, tuple[int, ...]] = {}

    def as_vector(path: Any, leaf: Any) -> Any:
        shape: tuple[int, ...] = tuple(getattr(leaf, "shape", ()))
        name = path_str(path)
        if name.rsplit("/", 1)[-1] == "bias" and len(shape) >= 2 and set(shape[1:]) == {1}:
            shapes[name] = tuple(shape)
            return leaf.reshape(shape[0])
        return leaf

    def restore(path: Any, leaf: Any) -> Any:
        shape = shapes.get(path_str(path))
        return leaf if shape is None else leaf.reshape(shape)

    flat = jax.tree_util.tree_map_with_path(as_vector, model)
    out = reinit(flat, key, wrapped, strict=strict)
    return jax.tree_util.tree_map_with_path(restore, out) if shapes else out


def keras_initializer(init: Any, seed: int | None = None) -> Any:
    r"""A ``keras.initializers.Initializer`` that draws with a jaxinit scheme.

    Keras 3 with the JAX backend (``KERAS_BACKEND=jax``) lays kernels out as Flax does
    (``(in, out)``, ``(*kernel, in, out)``), so the scheme's fans are the layer's. Keys:
    with an int ``seed`` every call gives the same values (Keras' rule for seeded
    initializers); with ``seed=None`` each call draws from a fresh
    ``keras.random.SeedGenerator``'s next key.

    Args:
      init: a jaxinit initializer (or any ``init(key, shape, dtype)`` callable).
      seed: an int seed, or None.

    Returns:
      A Keras initializer. Its ``get_config()`` records the scheme's repr and the seed,
      so a layer's config serializes; rebuilding the scheme from a saved config is a
      TypeError (pass the initializer again when rebuilding the model).

    Example:
      >>> import os, jax
      >>> _ = os.environ.setdefault("KERAS_BACKEND", "jax")   # before keras is imported
      >>> import keras, jaxinit
      >>> layer = keras.layers.Dense(64, kernel_initializer=jaxinit.keras_initializer(
      ...     jaxinit.orthogonal(), seed=0))
      >>> layer.build((None, 64))
      >>> w = layer.kernel.value
      >>> bool(abs(w.T @ w - jax.numpy.eye(64)).max() < 1e-5)
      True
    """
    if not callable(init):
        raise TypeError(f"keras_initializer: init={init!r} must be an initializer "
                        "init(key, shape, dtype)")
    if seed is not None:
        seed = check_int("keras_initializer", "seed", seed)
    return _keras_class()(init, seed)


@functools.cache
def _keras_class() -> type:
    import keras

    if keras.backend.backend() != "jax":
        raise ValueError(
            f"keras_initializer: Keras runs on the {keras.backend.backend()!r} backend; jaxinit "
            "initializers need the JAX backend (set KERAS_BACKEND=jax before importing keras)"
        )

    class JaxinitInitializer(keras.initializers.Initializer):
        """A jaxinit scheme as a Keras initializer (see ``jaxinit.keras_initializer``)."""

        def __init__(self, init: Any, seed: int | None = None) -> None:
            self.init = init
            self.seed = seed
            self._generator: Any = None if seed is not None else keras.random.SeedGenerator()

        def __call__(self, shape: Any, dtype: Any = None) -> jax.Array:
            seed = self.seed
            key = self._generator.next() if seed is None else jax.random.PRNGKey(seed)
            dtype = keras.backend.standardize_dtype(dtype or keras.config.floatx())
            return self.init(key, tuple(shape), dtype)

        def get_config(self) -> dict[str, Any]:
            return {"scheme": repr(self.init), "seed": self.seed}

        @classmethod
        def from_config(cls, config: dict[str, Any]) -> Any:
            raise TypeError(
                f"keras_initializer: a jaxinit scheme ({config.get('scheme')}) is not rebuilt "
                "from a saved config; build the layer with jaxinit.keras_initializer(...) again"
            )

    return JaxinitInitializer
