"""Named initialization recipes of familiar stacks, as ``reinit`` rule sets."""

from __future__ import annotations

import re
from typing import Any

from jaxinit._src import paths as _paths
from jaxinit._src.depth import (
    deepnorm_constants,
    deepnorm_init,
    fixup_init,
    olmo_init,
    residual_normal,
)
from jaxinit._src.mup import mup_rules
from jaxinit._src.schemes import Normal, VarianceScaling, zeros

RECIPES = ("gpt2", "megatron", "olmo", "fixup", "deepnorm", "torch_default", "mup")

#: Default path patterns (``re.fullmatch``), overridable by keyword.
DEFAULTS: dict[str, str] = {
    # The block index of a path: linen ``Block_3``/``layers_3``, nnx ``layers/3``.
    "layer_pattern": r"(?:.*/)?(?:layers|blocks|layer|block|Block|h)[_/](\d+)/.*",
    # Residual output projections: Flax attention ``out``, common MLP/attention names.
    "residual": r".*/(out|out_proj|o_proj|c_proj|fc2|down_proj|wo|dense_4h_to_h)/kernel",
    "embedding": r"(.*/)?embedding",
    "kernel": r"(.*/)?kernel",
    "bias": r"(.*/)?bias",
    # DeepNorm's beta-scaled kernels: values, attention outputs, the MLP.
    "beta": r".*/(value|v_proj|out|out_proj|o_proj|fc1|fc2|up_proj|down_proj|gate_proj|wi|wo)"
            r"/kernel",
    # Fixup: the last layer of each residual branch and the classifier.
    "last": r".*/(Conv_1|conv2|Dense_1)/kernel",
    "classifier": r"(.*/)?(head|classifier|fc|logits)/kernel",
}


def _layers(paths: list[str], pattern: str) -> dict[str, int]:
    regex = re.compile(pattern)
    out = {}
    for p in paths:
        match = regex.fullmatch(p)
        if match:
            out[p] = int(match.group(1))
    return out


def _n_layers(name: str, layers: dict[str, int], given: Any) -> int:
    if given is not None:
        return int(given)
    if not layers:
        raise ValueError(
            f"recipe({name!r}): cannot infer n_layers: no path matches layer_pattern; "
            "pass n_layers= (or layer_pattern=)"
        )
    return len(set(layers.values()))


def _keep_used(rules: list[tuple[str, Any]], paths: list[str]) -> tuple[tuple[str, Any], ...]:
    """Drops rules that match no path (so ``reinit(..., strict=True)`` accepts the set)."""
    return tuple(
        (p, init) for p, init in rules if any(re.fullmatch(p, path) for path in paths)
    )


def recipe(name: str, model_or_params: Any, **config: Any) -> tuple[tuple[str, Any], ...]:
    r"""The ``reinit`` rule set of a named initialization recipe for a given model.

    ``jaxinit.reinit(params, key, jaxinit.recipe(name, params, ...))`` initializes the
    model as the recipe's source does. Paths are matched with ``re.fullmatch``; the
    patterns in :data:`DEFAULTS` (Flax attention ``query/key/value/out``, MLP names such
    as ``fc1/fc2``, blocks named ``Block_i``/``layers_i``/``layers/i``) can be overridden
    by keyword. Rules that match no parameter are left out.

    * ``"gpt2"`` (Radford et al. 2019) and ``"megatron"`` (Shoeybi et al. 2019): kernels
      and embeddings N(0, std^2) with ``std=0.02``; residual output projections
      N(0, std^2 / (2 n_layers)) (:func:`jaxinit.residual_normal`); biases zero.
    * ``"olmo"`` (Groeneveld et al. 2024, "mitchell"): 3-sigma truncated normals, std
      1/sqrt(fan_in) for kernels and 1/sqrt(d_model) for embeddings, 1/sqrt(2 fan_in
      (l + 1)) for the residual output projections of block l (:func:`jaxinit.olmo_init`).
    * ``"fixup"`` (Zhang et al. 2019): the last layer of each branch (``last``) and the
      classifier zero, other kernels inside blocks He normal times
      L^(-1/(2m-2)) (:func:`jaxinit.fixup_init`, ``layers_per_branch=m``, L the number
      of blocks), kernels outside blocks He normal, biases zero.
    * ``"deepnorm"`` (Wang et al. 2022): ``beta`` kernels Xavier normal with gain beta,
      other kernels Xavier normal, biases zero; beta from ``encoder_layers`` /
      ``decoder_layers`` (default: decoder-only with the inferred depth) and ``part``.
      The residual multiplier alpha belongs in the model: see
      :func:`jaxinit.deepnorm_constants`.
    * ``"torch_default"``: ``jaxinit.torch.default_rules()`` (PyTorch's defaults).
    * ``"mup"`` (Yang et al. 2021): :func:`jaxinit.mup_rules` with ``base=`` and its
      other keywords.

    Args:
      name: one of ``"gpt2"``, ``"megatron"``, ``"olmo"``, ``"fixup"``, ``"deepnorm"``,
        ``"torch_default"``, ``"mup"``.
      model_or_params: an nnx module, ``nnx.State``, linen variables or any pytree.
      **config: ``n_layers``, ``std``, ``d_model``, ``layers_per_branch``,
        ``encoder_layers``, ``decoder_layers``, ``part``, ``base`` and the patterns of
        :data:`DEFAULTS`.

    Returns:
      A tuple of ``(regex, initializer)`` pairs for ``jaxinit.reinit``.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, jaxinit
      >>> class Block(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         return x + nn.Dense(16, name="fc2")(nn.relu(nn.Dense(64, name="fc1")(x)))
      >>> model = nn.Sequential([Block(), Block()])
      >>> params = model.init(jax.random.key(0), jnp.ones((1, 16)))
      >>> rules = jaxinit.recipe("gpt2", params)
      >>> [init for _, init in rules][:2]     # residual fc2: 0.02 / sqrt(2 * 2)
      [Normal(stddev=0.01, dtype=None), Normal(stddev=0.02, dtype=None)]
      >>> params = jaxinit.reinit(params, jax.random.key(1), rules)

    References:
      Radford et al. (2019), GPT-2, https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf;
      Shoeybi et al. (2019), Megatron-LM, https://arxiv.org/abs/1909.08053;
      Groeneveld et al. (2024), OLMo, https://arxiv.org/abs/2402.00838;
      Zhang, Dauphin & Ma (2019), Fixup, https://arxiv.org/abs/1901.09321;
      Wang et al. (2022), DeepNet, https://arxiv.org/abs/2203.00555;
      Yang et al. (2021), Tensor Programs V, https://arxiv.org/abs/2203.03466.
    """
    if name not in RECIPES:
        raise ValueError(f"recipe: name={name!r} is not one of {', '.join(map(repr, RECIPES))}")
    if name == "mup":
        if "base" not in config:
            raise TypeError(
                "recipe('mup'): base= (the base model or {width: base_width}) is required"
            )
        return mup_rules(model_or_params, config.pop("base"), **config)
    if name == "torch_default":
        if config:
            raise TypeError(f"recipe('torch_default'): unexpected options {sorted(config)}")
        from jaxinit import torch as jt

        return tuple(jt.default_rules())
    known = {"n_layers", "std", "d_model", "layers_per_branch", "encoder_layers",
             "decoder_layers", "part", *DEFAULTS}
    unknown = sorted(set(config) - known)
    if unknown:
        raise TypeError(f"recipe({name!r}): unexpected options {unknown}")
    pat = {**DEFAULTS, **{k: v for k, v in config.items() if k in DEFAULTS}}
    leaves = _paths.float_leaves("recipe", "model_or_params", model_or_params)
    paths = list(leaves)
    layers = _layers(paths, pat["layer_pattern"])
    rules: list[tuple[str, Any]] = []
    if name in ("gpt2", "megatron"):
        std = float(config.get("std", 0.02))
        n = _n_layers(name, layers, config.get("n_layers"))
        rules = [
            (pat["residual"], residual_normal(n, std)),
            (pat["embedding"], Normal(std)),
            (pat["kernel"], Normal(std)),
            (pat["bias"], zeros),
        ]
    elif name == "olmo":
        residual = re.compile(pat["residual"])
        for p in paths:
            if residual.fullmatch(p):
                if p not in layers:
                    raise ValueError(f"recipe('olmo'): residual {p!r} matches no layer_pattern")
                rules.append((re.escape(p), olmo_init(layers[p])))
        emb = [v for p, v in leaves.items() if re.fullmatch(pat["embedding"], p)]
        d_model = config.get("d_model", emb[0].shape[-1] if emb else None)
        if d_model is not None:
            rules.append((pat["embedding"], olmo_init(d=int(d_model))))
        rules += [(pat["kernel"], olmo_init()), (pat["bias"], zeros)]
    elif name == "fixup":
        n = _n_layers(name, layers, config.get("n_layers"))
        m = int(config.get("layers_per_branch", 2))
        branch = fixup_init(n, m)
        rules = [(pat["last"], zeros), (pat["classifier"], zeros)]
        kernel = re.compile(pat["kernel"])
        rules += [(re.escape(p), branch) for p in paths if p in layers and kernel.fullmatch(p)]
        rules += [
            (pat["kernel"], VarianceScaling(2.0, "fan_in", "normal")),
            (pat["bias"], zeros),
        ]
    else:  # deepnorm
        enc = config.get("encoder_layers")
        dec = config.get("decoder_layers")
        if enc is None and dec is None:
            dec = _n_layers(name, layers, config.get("n_layers"))
        constants = deepnorm_constants(encoder_layers=enc or 0, decoder_layers=dec or 0)
        part = config.get("part", next(iter(constants)) if len(constants) == 1 else None)
        if part not in constants:
            raise ValueError(
                f"recipe('deepnorm'): part={part!r} must be one of {sorted(constants)}"
            )
        rules = [
            (pat["beta"], deepnorm_init(constants[part].beta)),
            (pat["kernel"], deepnorm_init(1.0)),
            (pat["bias"], zeros),
        ]
    return _keep_used(rules, paths)
