"""Named initialization recipes of familiar stacks, as ``reinit`` rule sets.

Each recipe is a function of the parameter tree with explicit keyword arguments
(:func:`gpt2`, :func:`olmo`, ...); :func:`recipe` looks one up by name and passes the
keywords through, so a keyword the recipe does not take is a TypeError. The
transformers-equal recipes (``llama``, ``bert``, ``vit``, ``t5``) live in
``jaxinit/_src/params/recipes_hf.py``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

from jaxinit._src.compose import paths as _paths
from jaxinit._src.compose.combinators import stacked as _stacked
from jaxinit._src.core.base import check_int, check_scalar
from jaxinit._src.params.depth import (
    deepnorm_constants,
    deepnorm_init,
    fixup_init,
    olmo_init,
    per_layer,
    residual_normal,
    sigma_truncated,
    torchtitan_init,
)
from jaxinit._src.params.mup import mup_rules
from jaxinit._src.schemes.standard import Normal, TruncatedNormal, VarianceScaling, ones, zeros

Rules = tuple[tuple[str, Any], ...]

#: Default path patterns (``re.fullmatch``), overridable by keyword.
DEFAULTS: dict[str, str] = {
    # The block index of a path: linen ``Block_3``/``layers_3``, nnx ``layers/3``. The
    # prefix is non-greedy, so the outermost index wins (T5's ``block/0/layer/1``: block 0).
    "layer_pattern": r"(?:.*?/)?(?:layers|blocks|layer|block|Block|h)[_/](\d+)/.*",
    # Residual output projections: Flax attention ``out``, common MLP/attention names.
    "residual": r".*/(out|out_proj|o_proj|c_proj|fc2|down_proj|wo|dense_4h_to_h)/kernel",
    # OLMo's residual output projections (``attn_out``, the block's ``ff_out``) and the above.
    "olmo_residual": r".*/(attn_out|ff_out|out|out_proj|o_proj|c_proj|fc2|down_proj|wo"
                     r"|dense_4h_to_h)/kernel",
    "embedding": r"(.*/)?embedding",
    "kernel": r"(.*/)?kernel",
    "bias": r"(.*/)?bias",
    # Norm gains (Flax LayerNorm / RMSNorm ``scale``).
    "scale": r"(.*/)?scale",
    # DeepNorm's beta-scaled kernels: values, attention outputs, the MLP.
    "beta": r".*/(value|v_proj|out|out_proj|o_proj|fc1|fc2|up_proj|down_proj|gate_proj|wi|wo)"
            r"/kernel",
    # Fixup: the last layer of each residual branch and the classifier.
    "last": r".*/(Conv_1|conv2|Dense_1)/kernel",
    "classifier": r"(.*/)?(head|classifier|fc|logits)/kernel",
    # The final output projection (unembedding) of a language model (OLMo's top-level
    # ``ff_out``); a leaf inside a block or a stacked leaf is never the head.
    "head": r"(.*/)?(lm_head|output|ff_out|head)/kernel",
    # torchtitan's depth-scaled kernels: attention ``wo``, MLP ``w2`` (down) and ``w3`` (up).
    "depth_scaled": r".*/(wo|w2|w3|o_proj|down_proj|up_proj)/kernel",
}


def _layers(paths: list[str], pattern: str) -> dict[str, int]:
    regex = re.compile(pattern)
    out = {}
    for p in paths:
        match = regex.fullmatch(p)
        if match:
            out[p] = int(match.group(1))
    return out


def _stacked_leaves(name: str, leaves: Mapping[str, Any], pattern: str | None) -> dict[str, int]:
    """Paths matching ``stacked`` -> the size of their leading layer axis."""
    if pattern is None:
        return {}
    regex = re.compile(pattern)
    out = {}
    for p, v in leaves.items():
        if regex.fullmatch(p):
            if len(v.shape) < 2:
                raise ValueError(
                    f"recipe({name!r}): stacked leaf {p!r} has shape {tuple(v.shape)}; "
                    "a stacked leaf needs a leading layer axis and at least one more"
                )
            out[p] = int(v.shape[0])
    return out


def _n_layers(name: str, layers: dict[str, int], stacks: dict[str, int], given: Any) -> int:
    if given is not None:
        return check_int(f"recipe({name!r})", "n_layers", given, minimum=1)
    if layers:
        return len(set(layers.values()))
    if stacks:
        sizes = set(stacks.values())
        if len(sizes) > 1:
            raise ValueError(
                f"recipe({name!r}): stacked leaves have different layer counts {sorted(sizes)}; "
                "pass n_layers="
            )
        return sizes.pop()
    raise ValueError(
        f"recipe({name!r}): cannot infer n_layers: no path matches layer_pattern and no leaf "
        "matches stacked; pass n_layers= (or layer_pattern= / stacked=)"
    )


def _keep_used(rules: list[tuple[str, Any]], paths: list[str]) -> Rules:
    """Keeps the rules that are the first match of some path (so ``reinit(...,
    strict=True)`` accepts the set: a rule shadowed by earlier ones is dropped)."""
    compiled = [re.compile(p) for p, _ in rules]
    used = set()
    for path in paths:
        first = next((i for i, regex in enumerate(compiled) if regex.fullmatch(path)), None)
        if first is not None:
            used.add(first)
    return tuple(rule for i, rule in enumerate(rules) if i in used)


def _check_pattern(name: str, arg: str, value: Any) -> None:
    if not isinstance(value, str):
        raise TypeError(f"recipe({name!r}): {arg}={value!r} must be a regex string")
    try:
        re.compile(value)
    except re.error as err:
        raise ValueError(f"recipe({name!r}): {arg}={value!r} is not a regex: {err}") from None


def _setup(name: str, tree: Any, **patterns: Any) -> tuple[dict[str, Any], list[str]]:
    for arg, value in patterns.items():
        if value is not None or arg != "stacked":
            _check_pattern(name, arg, value)
    leaves = _paths.float_leaves("recipe", "model_or_params", tree)
    return leaves, list(leaves)


def _residual_rules(
    name: str, paths: list[str], residual: str, layers: dict[str, int],
    stacks: dict[str, int], init_for: Callable[[int], Any], skip: frozenset[str] = frozenset(),
) -> list[tuple[str, Any]]:
    """One rule per residual path (those in ``skip`` left out): its block's initializer,
    or per_layer for a stack."""
    regex = re.compile(residual)
    rules: list[tuple[str, Any]] = []
    for p in paths:
        if p in skip or not regex.fullmatch(p):
            continue
        if p in stacks:
            rules.append((re.escape(p), per_layer(init_for)))
        elif p in layers:
            rules.append((re.escape(p), init_for(layers[p])))
        else:
            raise ValueError(
                f"recipe({name!r}): residual {p!r} matches neither layer_pattern nor stacked"
            )
    return rules


def _heads(leaves: Mapping[str, Any], head: str, layers: dict[str, int],
           stacks: dict[str, int]) -> dict[str, Any]:
    """The leaves matching ``head`` that are neither inside a block nor stacked."""
    return {p: v for p, v in leaves.items()
            if re.fullmatch(head, p) and p not in layers and p not in stacks}


def _positive(name: str, **values: Any) -> None:
    for arg, value in values.items():
        check_scalar(f"recipe({name!r})", arg, value, positive=True)


# --- GPT-2 and Megatron ----------------------------------------------------------------


def _gpt2_like(name: str, tree: Any, n_layers: int | None, std: float, layer_pattern: str,
               residual: str, embedding: str, kernel: str, bias: str, scale: str,
               stacked: str | None) -> Rules:
    _positive(name, std=std)
    leaves, paths = _setup(name, tree, layer_pattern=layer_pattern, residual=residual,
                           embedding=embedding, kernel=kernel, bias=bias, scale=scale,
                           stacked=stacked)
    layers = _layers(paths, layer_pattern)
    n = _n_layers(name, layers, _stacked_leaves(name, leaves, stacked), n_layers)
    rules = [
        (residual, residual_normal(n, std)),
        (embedding, Normal(std)),
        (kernel, Normal(std)),
        (bias, zeros),
        (scale, ones),
    ]
    return _keep_used(rules, paths)


def gpt2(
    tree: Any,
    *,
    n_layers: int | None = None,
    std: float = 0.02,
    layer_pattern: str = DEFAULTS["layer_pattern"],
    residual: str = DEFAULTS["residual"],
    embedding: str = DEFAULTS["embedding"],
    kernel: str = DEFAULTS["kernel"],
    bias: str = DEFAULTS["bias"],
    scale: str = DEFAULTS["scale"],
    stacked: str | None = None,
) -> Rules:
    r"""GPT-2's initialization (Radford et al. 2019), equal to transformers' ``GPT2Model``.

    .. math:: W \sim \mathcal{N}(0, \sigma^2), \qquad
       W_\text{residual} \sim \mathcal{N}\!\Big(0, \frac{\sigma^2}{2L}\Big)

    with sigma = ``std`` (transformers' ``initializer_range``, 0.02) for every kernel and
    embedding (``wte``, ``wpe``, ``c_attn``, ``c_fc``), the residual output projections
    (``attn/c_proj``, ``mlp/c_proj``; also ``out``, ``o_proj``, ``fc2``, ``down_proj``...)
    scaled by :math:`1/\sqrt{2L}` for :math:`L` blocks (:func:`jaxinit.residual_normal`), biases
    zero and
    norm gains (``scale``) one. L is ``n_layers``, or the number of block indices found
    by ``layer_pattern``, or the leading axis of the ``stacked`` leaves (a regex of
    scan-stacked leaves with a leading layer axis).

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
      Radford et al. (2019), GPT-2, section 2.3, https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf;
      transformers' GPT-2, https://huggingface.co/docs/transformers/model_doc/gpt2.
    """
    return _gpt2_like("gpt2", tree, n_layers, std, layer_pattern, residual, embedding,
                      kernel, bias, scale, stacked)


def megatron(
    tree: Any,
    *,
    n_layers: int | None = None,
    std: float = 0.02,
    layer_pattern: str = DEFAULTS["layer_pattern"],
    residual: str = DEFAULTS["residual"],
    embedding: str = DEFAULTS["embedding"],
    kernel: str = DEFAULTS["kernel"],
    bias: str = DEFAULTS["bias"],
    scale: str = DEFAULTS["scale"],
    stacked: str | None = None,
) -> Rules:
    r"""Megatron-LM's ``init_method_normal`` / ``scaled_init_method_normal`` (Shoeybi et al. 2019).

    .. math:: W \sim \mathcal{N}(0, \sigma^2), \qquad
       W_\text{out} \sim \mathcal{N}\!\Big(0, \frac{\sigma^2}{2L}\Big)

    sigma = ``std`` (``init_method_std``, 0.02) for kernels and embeddings,
    ``scaled_init_method_normal(sigma, L)`` = sigma / sqrt(2 L) for the attention output
    (``dense``) and MLP output (``dense_4h_to_h``) projections, untruncated; biases
    zero, norm gains one. The same law for every block, so an unrolled and a
    scan-``stacked`` tree get the same rules; L as in :func:`gpt2`.

    Example:
      >>> import jax.numpy as jnp, jaxinit
      >>> tree = {"layers": {"mlp": {"dense_4h_to_h": {"kernel": jnp.zeros((8, 64, 16))}}}}
      >>> jaxinit.recipe("megatron", tree, stacked=r"layers/.*")[0][1]   # 0.02 / sqrt(16)
      Normal(stddev=0.005, dtype=None)

    References:
      Shoeybi et al. (2019), Megatron-LM, https://arxiv.org/abs/1909.08053 (code:
      https://github.com/NVIDIA/Megatron-LM, ``scaled_init_method_normal``).
    """
    return _gpt2_like("megatron", tree, n_layers, std, layer_pattern, residual, embedding,
                      kernel, bias, scale, stacked)


# --- OLMo -----------------------------------------------------------------------------


def olmo(
    tree: Any,
    *,
    d_model: int | None = None,
    layer_pattern: str = DEFAULTS["layer_pattern"],
    residual: str = DEFAULTS["olmo_residual"],
    head: str = DEFAULTS["head"],
    embedding: str = DEFAULTS["embedding"],
    kernel: str = DEFAULTS["kernel"],
    bias: str = DEFAULTS["bias"],
    scale: str = DEFAULTS["scale"],
    stacked: str | None = None,
) -> Rules:
    r"""OLMo's ``mitchell`` initialization (Groeneveld et al. 2024).

    .. math:: \sigma = \frac{1}{\sqrt{d}}, \qquad
       \sigma_l = \frac{1}{\sqrt{2\,d\,(l + 1)}} \text{ (output projections of block } l)

    every weight a normal truncated at +-3 sigma (:func:`jaxinit.olmo_init`): d is the
    kernel's fan_in (input projections; the MLP hidden size for the MLP output), the
    embedding's width ``d_model`` for embeddings (inferred from the table); l is the
    0-based block index found by ``layer_pattern`` or, for a ``stacked`` leaf (a regex
    of scan-stacked leaves), its index on the leading axis (:func:`jaxinit.per_layer`).
    Stacked input projections are drawn per slice (:func:`jaxinit.stacked`), with the
    fans of one layer. Biases zero, norm gains one. The residual outputs are OLMo's
    ``attn_out`` and ``ff_out`` (and the names of :func:`gpt2`) inside blocks; the
    final ``ff_out`` (``head``: a match outside every block and not stacked) is an input
    projection, :math:`1/\sqrt{d_\text{model}}`.

    Example:
      >>> import jax.numpy as jnp, jaxinit
      >>> tree = {"layers": {"attn_out": {"kernel": jnp.zeros((4, 64, 64))}}}
      >>> rules = jaxinit.recipe("olmo", tree, residual=r".*/attn_out/kernel",
      ...                        stacked=r"layers/.*")
      >>> rules[0][1].layer_init(3)     # slice 3: 1 / sqrt(2 * 64 * 4)
      OLMoInit(layer=3, d=None, in_axis=-2, out_axis=-1, dtype=None)

    References:
      Groeneveld et al. (2024), OLMo, https://arxiv.org/abs/2402.00838 (code:
      https://github.com/allenai/OLMo, ``InitFnType.mitchell``).
    """
    name = "olmo"
    if d_model is not None:
        check_int(f"recipe({name!r})", "d_model", d_model, minimum=1)
    leaves, paths = _setup(name, tree, layer_pattern=layer_pattern, residual=residual,
                           head=head, embedding=embedding, kernel=kernel, bias=bias,
                           scale=scale, stacked=stacked)
    layers = _layers(paths, layer_pattern)
    stacks = _stacked_leaves(name, leaves, stacked)
    heads = frozenset(_heads(leaves, head, layers, stacks))
    rules = _residual_rules(name, paths, residual, layers, stacks, olmo_init, heads)
    emb = [v for p, v in leaves.items() if re.fullmatch(embedding, p)]
    if d_model is None and emb:
        d_model = int(emb[0].shape[-1])
    if d_model is not None:
        rules.append((embedding, olmo_init(d=d_model)))
    rules += [(re.escape(p), _stacked(olmo_init())) for p in stacks if re.fullmatch(kernel, p)]
    rules += [(kernel, olmo_init()), (bias, zeros), (scale, ones)]
    return _keep_used(rules, paths)


def olmo_full_megatron(
    tree: Any,
    *,
    std: float = 0.02,
    n_layers: int | None = None,
    cutoff: float = 3.0,
    layer_pattern: str = DEFAULTS["layer_pattern"],
    residual: str = DEFAULTS["olmo_residual"],
    head: str = DEFAULTS["head"],
    embedding: str = DEFAULTS["embedding"],
    kernel: str = DEFAULTS["kernel"],
    bias: str = DEFAULTS["bias"],
    scale: str = DEFAULTS["scale"],
    stacked: str | None = None,
) -> Rules:
    r"""OLMo's ``full_megatron`` initialization: Megatron's stds, truncated at +-3 sigma.

    .. math:: \sigma_\text{in} = \sigma_\text{emb} = \sigma, \qquad
       \sigma_\text{out} = \frac{\sigma}{\sqrt{2L}}, \qquad
       \sigma_\text{head} = d^{-1/2}

    :math:`\sigma` = ``std`` (``init_std``, 0.02) for input projections and embeddings, the
    residual output projections (``attn_out``/``ff_out`` of every block) :math:`\sigma/\sqrt{2L}`,
    the final output projection (``head``, e.g. ``lm_head``) :math:`d_\text{model}^{-1/2}` with
    :math:`d_\text{model}` its fan_in; every weight truncated at +-``cutoff`` (OLMo's
    ``init_cutoff_factor``,
    default 3) standard deviations. Biases zero, norm gains one. L as in :func:`gpt2`.
    A ``head`` match inside a block or stacked (a block's ``ff_out``) is a residual
    output, not the head.

    Example:
      >>> import jax.numpy as jnp, jaxinit
      >>> tree = {"layers_0": {"wo": {"kernel": jnp.zeros((64, 64))}},
      ...         "lm_head": {"kernel": jnp.zeros((64, 100))}}
      >>> [round(init.stddev, 4) for _, init in jaxinit.recipe("olmo_full_megatron", tree)]
      [0.125, 0.0141]

    References:
      Groeneveld et al. (2024), OLMo, https://arxiv.org/abs/2402.00838 (code:
      https://github.com/allenai/OLMo, ``InitFnType.full_megatron``).
    """
    name = "olmo_full_megatron"
    _positive(name, std=std, cutoff=cutoff)
    leaves, paths = _setup(name, tree, layer_pattern=layer_pattern, residual=residual,
                           head=head, embedding=embedding, kernel=kernel, bias=bias,
                           scale=scale, stacked=stacked)
    layers = _layers(paths, layer_pattern)
    stacks = _stacked_leaves(name, leaves, stacked)
    n = _n_layers(name, layers, stacks, n_layers)
    rules: list[tuple[str, Any]] = [
        (re.escape(p), sigma_truncated(int(v.shape[-2]) ** -0.5, cutoff))
        for p, v in _heads(leaves, head, layers, stacks).items()
    ]
    rules += [(residual, sigma_truncated(std / (2 * n) ** 0.5, cutoff))]
    rules += [
        (embedding, sigma_truncated(std, cutoff)),
        (kernel, sigma_truncated(std, cutoff)),
        (bias, zeros),
        (scale, ones),
    ]
    return _keep_used(rules, paths)


# --- torchtitan -------------------------------------------------------------------------


def torchtitan(
    tree: Any,
    *,
    depth_init: bool = True,
    std: float = 0.02,
    n_layers: int | None = None,
    layer_pattern: str = DEFAULTS["layer_pattern"],
    depth_scaled: str = DEFAULTS["depth_scaled"],
    head: str = DEFAULTS["head"],
    embedding: str = DEFAULTS["embedding"],
    kernel: str = DEFAULTS["kernel"],
    bias: str = DEFAULTS["bias"],
    scale: str = DEFAULTS["scale"],
    stacked: str | None = None,
) -> Rules:
    r"""torchtitan's Llama initialization (``depth_init=True`` by default).

    .. math:: \sigma_l = \frac{\sigma}{\sqrt{2\,(l + 1)}} \ (\texttt{depth\_init}), \qquad
       \sigma_\text{head} = d^{-1/2}, \qquad \sigma_\text{emb} = 1

    for the ``depth_scaled`` kernels of block l (attention ``wo``, MLP ``w2`` and ``w3``;
    HF names ``o_proj``, ``down_proj``, ``up_proj``), :math:`\sigma/\sqrt{2L}` with
    ``depth_init=False`` (:func:`jaxinit.torchtitan_init`); other kernels (``wq``,
    ``wk``, ``wv``, ``w1``) :math:`\sigma` = ``std`` = 0.02, the token embedding :math:`N(0, 1)`,
    the
    output projection (``head``) :math:`d^{-1/2}` truncated at :math:`\pm 3\sigma` (:math:`d` its
    fan_in), norm
    gains one, biases zero. The truncations at torchtitan's default *absolute* bounds
    +-2 are expressed in sigma units (+-2/sigma, over 100 sigma here): they truncate
    nothing. Block l is found by ``layer_pattern`` or, for ``stacked`` leaves, is the
    index on the leading axis (:func:`jaxinit.per_layer`).

    Example:
      >>> import jax.numpy as jnp, jaxinit
      >>> tree = {"layers": {"w2": {"kernel": jnp.zeros((4, 128, 64))}}}
      >>> rules = jaxinit.recipe("torchtitan", tree, stacked=r"layers/.*")
      >>> round(rules[0][1].layer_init(1).stddev, 6)       # 0.02 / sqrt(2 * 2)
      0.01

    References:
      Liang et al. (2024), TorchTitan, https://arxiv.org/abs/2410.06511 (code:
      https://github.com/pytorch/torchtitan, ``torchtitan/models/llama3/model``).
    """
    name = "torchtitan"
    if not isinstance(depth_init, bool):
        raise TypeError(f"recipe({name!r}): depth_init={depth_init!r} must be a bool")
    _positive(name, std=std)
    leaves, paths = _setup(name, tree, layer_pattern=layer_pattern, depth_scaled=depth_scaled,
                           head=head, embedding=embedding, kernel=kernel, bias=bias,
                           scale=scale, stacked=stacked)
    layers = _layers(paths, layer_pattern)
    stacks = _stacked_leaves(name, leaves, stacked)
    if depth_init:
        rules = _residual_rules(name, paths, depth_scaled, layers, stacks,
                                _TorchtitanLayer(std))
    else:
        n = _n_layers(name, layers, stacks, n_layers)
        rules = [(depth_scaled, torchtitan_init(n_layers=n, std=std))]
    rules += [(re.escape(p), sigma_truncated(int(v.shape[-2]) ** -0.5, 3.0))
              for p, v in _heads(leaves, head, layers, stacks).items()]
    rules += [
        (embedding, Normal(1.0)),
        (kernel, sigma_truncated(std, 2.0 / std)),
        (bias, zeros),
        (scale, ones),
    ]
    return _keep_used(rules, paths)


class _TorchtitanLayer:
    """Layer index -> :func:`torchtitan_init` (a hashable ``init_for`` for per_layer)."""

    def __init__(self, std: float):
        self.std = std

    def __call__(self, layer: int) -> Normal | TruncatedNormal:
        return torchtitan_init(layer, std=self.std)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _TorchtitanLayer) and other.std == self.std

    def __hash__(self) -> int:
        return hash(("torchtitan_init", self.std))

    def __repr__(self) -> str:
        return f"torchtitan_init(layer, std={self.std})"


# --- Fixup, DeepNorm, PyTorch, muP ----------------------------------------------------------


def fixup(
    tree: Any,
    *,
    n_layers: int | None = None,
    layers_per_branch: int = 2,
    layer_pattern: str = DEFAULTS["layer_pattern"],
    last: str = DEFAULTS["last"],
    classifier: str = DEFAULTS["classifier"],
    kernel: str = DEFAULTS["kernel"],
    bias: str = DEFAULTS["bias"],
) -> Rules:
    r"""Fixup (Zhang et al. 2019): zero last layers, depth-scaled He normal inside branches.

    .. math:: \mathrm{Var}[w] = \frac{2}{\text{fan\_in}}\, L^{-\frac{1}{m - 1}}

    for the kernels inside blocks (:func:`jaxinit.fixup_init`, m = ``layers_per_branch``,
    L the number of blocks); the last layer of each branch (``last``) and the classifier
    zero; kernels outside blocks He normal; biases zero.

    Example:
      >>> import jax.numpy as jnp, jaxinit
      >>> tree = {"Block_0": {"Conv_0": {"kernel": jnp.zeros((3, 3, 8, 8))},
      ...                     "Conv_1": {"kernel": jnp.zeros((3, 3, 8, 8))}}}
      >>> [p for p, _ in jaxinit.recipe("fixup", tree, n_layers=4)][:2]   # Conv_1: zeros
      ['.*/(Conv_1|conv2|Dense_1)/kernel', 'Block_0/Conv_0/kernel']

    References:
      Zhang, Dauphin & Ma (2019), Fixup, https://arxiv.org/abs/1901.09321.
    """
    name = "fixup"
    _, paths = _setup(name, tree, layer_pattern=layer_pattern, last=last,
                      classifier=classifier, kernel=kernel, bias=bias)
    layers = _layers(paths, layer_pattern)
    n = _n_layers(name, layers, {}, n_layers)
    branch = fixup_init(n, layers_per_branch)
    rules: list[tuple[str, Any]] = [(last, zeros), (classifier, zeros)]
    regex = re.compile(kernel)
    rules += [(re.escape(p), branch) for p in paths if p in layers and regex.fullmatch(p)]
    rules += [(kernel, VarianceScaling(2.0, "fan_in", "normal")), (bias, zeros)]
    return _keep_used(rules, paths)


def deepnorm(
    tree: Any,
    *,
    n_layers: int | None = None,
    encoder_layers: int | None = None,
    decoder_layers: int | None = None,
    part: str | None = None,
    layer_pattern: str = DEFAULTS["layer_pattern"],
    beta: str = DEFAULTS["beta"],
    kernel: str = DEFAULTS["kernel"],
    bias: str = DEFAULTS["bias"],
) -> Rules:
    r"""DeepNet / DeepNorm (Wang et al. 2022): Xavier normal, gain beta on v, out and the MLP.

    .. math:: \mathrm{Var}[w] = \beta^2\,\frac{2}{\text{fan\_in} + \text{fan\_out}}

    for the ``beta`` kernels, gain 1 for the other kernels (queries, keys), biases zero;
    beta from :func:`jaxinit.deepnorm_constants` with ``encoder_layers`` /
    ``decoder_layers`` (default: decoder-only with ``n_layers`` or the inferred depth)
    and ``part``. The residual multiplier alpha belongs in the model.

    Example:
      >>> import jax.numpy as jnp, jaxinit
      >>> tree = {"layers_0": {"fc1": {"kernel": jnp.zeros((16, 64))}}}
      >>> round(jaxinit.recipe("deepnorm", tree, encoder_layers=12)[0][1].scale, 4)
      0.1021

    References:
      Wang et al. (2022), DeepNet, https://arxiv.org/abs/2203.00555.
    """
    name = "deepnorm"
    _, paths = _setup(name, tree, layer_pattern=layer_pattern, beta=beta, kernel=kernel,
                      bias=bias)
    if encoder_layers is None and decoder_layers is None:
        decoder_layers = _n_layers(name, _layers(paths, layer_pattern), {}, n_layers)
    constants = deepnorm_constants(encoder_layers=encoder_layers or 0,
                                   decoder_layers=decoder_layers or 0)
    if part is None and len(constants) == 1:
        part = next(iter(constants))
    if part not in constants:
        raise ValueError(f"recipe({name!r}): part={part!r} must be one of {sorted(constants)}")
    rules = [
        (beta, deepnorm_init(constants[part].beta)),
        (kernel, deepnorm_init(1.0)),
        (bias, zeros),
    ]
    return _keep_used(rules, paths)


def torch_default(tree: Any) -> Rules:
    r"""PyTorch's default initialization: ``jaxinit.torch.default_rules()``.

    ``torch.nn.Linear``/``Conv`` kernels :math:`U(\pm 1/\sqrt{\text{fan\_in}})` and biases
    likewise (see
    :func:`jaxinit.torch.default_rules`); ``tree`` is not inspected.

    Example:
      >>> import jaxinit
      >>> jaxinit.recipe("torch_default", {}) == tuple(jaxinit.torch.default_rules())
      True

    References:
      https://pytorch.org/docs/stable/nn.init.html.
    """
    from jaxinit import torch as jt

    return tuple(jt.default_rules())


def mup(
    tree: Any,
    *,
    base: Any,
    scale: float = 1.0,
    output_scale: float | None = None,
    distribution: str = "normal",
    delta: Any = None,
    axes: Any = None,
) -> Rules:
    r"""muP (Yang et al. 2021): :func:`jaxinit.mup_rules` (``tree``, ``base``, ...).

    .. math:: \mathrm{Var}[W_\text{hidden}] = \frac{s}{\text{fan\_in}}, \qquad
       \mathrm{Var}[W_\text{out}] = s_\text{out}\frac{\text{base\_fan\_in}}{\text{fan\_in}^2}

    Example:
      >>> import jax.numpy as jnp, jaxinit
      >>> tree = {"Dense_0": {"kernel": jnp.zeros((16, 64))},
      ...         "head": {"kernel": jnp.zeros((64, 10))}}
      >>> len(jaxinit.recipe("mup", tree, base={64: 16}))
      2

    References:
      Yang et al. (2021), Tensor Programs V, https://arxiv.org/abs/2203.03466.
    """
    return mup_rules(tree, base, scale=scale, output_scale=output_scale,
                     distribution=distribution, delta=delta, axes=axes)  # type: ignore[arg-type]


#: The recipe names, in the order :func:`recipe` lists them.
RECIPES: tuple[str, ...] = (
    "gpt2", "megatron", "olmo", "olmo_full_megatron", "torchtitan", "llama", "bert", "vit",
    "t5", "fixup", "deepnorm", "torch_default", "mup",
)


def _registry() -> dict[str, Callable[..., Rules]]:
    """The recipe function of each name of :data:`RECIPES` (this module's, or the
    transformers-equal ones of ``recipes_hf``)."""
    from jaxinit._src.params import recipes_hf

    here = globals()
    return {name: here[name] if name in here else getattr(recipes_hf, name) for name in RECIPES}


def recipe(name: str, model_or_params: Any, **config: Any) -> Rules:
    r"""The ``reinit`` rule set of a named initialization recipe for a given model.

    ``jaxinit.reinit(params, key, jaxinit.recipe(name, params, ...))`` initializes the
    model as the recipe's source does. Each name is a function of ``jaxinit.recipes``
    with its own keyword arguments (its docstring has the formulas), and ``config`` is
    passed to it: a keyword it does not take is a TypeError naming the recipe and the
    keyword. Paths are matched with ``re.fullmatch``; rules that match no parameter are
    left out.

    ==========================  ====================================================
    name                        rule (see ``jaxinit.recipes.<name>``)
    ==========================  ====================================================
    ``gpt2``, ``megatron``      N(0, 0.02^2), residual outputs 0.02 / sqrt(2 L)
    ``olmo``                    "mitchell": 1/sqrt(d), outputs 1/sqrt(2 d (l + 1)), 3-sigma
    ``olmo_full_megatron``      0.02, outputs 0.02 / sqrt(2 L), head d^(-1/2), 3-sigma
    ``torchtitan``              ``depth_init``: wo, w2, w3 0.02 / sqrt(2 (l + 1))
    ``llama``, ``bert``,        transformers' ``_init_weights``: N(0, initializer_range^2),
    ``vit``                     zero biases, unit norms (BERT's padding row zero)
    ``t5``                      transformers' T5: factor-based stds per module
    ``fixup``, ``deepnorm``     Fixup, DeepNet
    ``torch_default``, ``mup``  PyTorch's defaults, muP (``base=`` required)
    ==========================  ====================================================

    Args:
      name: one of :data:`RECIPES`.
      model_or_params: an nnx module, ``nnx.State``, linen variables or any pytree.
      **config: the recipe's keyword arguments.

    Returns:
      A tuple of ``(regex, initializer)`` pairs for ``jaxinit.reinit``.

    Example:
      >>> import jax.numpy as jnp, jaxinit
      >>> tree = {"h_0": {"c_proj": {"kernel": jnp.zeros((64, 64))}}}
      >>> round(jaxinit.recipe("gpt2", tree, std=0.04)[0][1].stddev, 6)   # 0.04 / sqrt(2)
      0.028284
      >>> jaxinit.recipe("gpt2", tree, d_model=64)
      Traceback (most recent call last):
      ...
      TypeError: recipe('gpt2'): unexpected keyword 'd_model'; 'gpt2' takes ...

    References:
      See each recipe's docstring.
    """
    if not isinstance(name, str) or name not in RECIPES:
        raise ValueError(f"recipe: name={name!r} is not one of {', '.join(map(repr, RECIPES))}")
    fn = _registry()[name]
    params = dict(list(inspect.signature(fn).parameters.items())[1:])
    for key in config:
        if key not in params:
            raise TypeError(
                f"recipe({name!r}): unexpected keyword {key!r}; {name!r} takes "
                f"{', '.join(params) or 'no keywords'}"
            )
    for key, param in params.items():
        if param.default is inspect.Parameter.empty and key not in config:
            raise TypeError(f"recipe({name!r}): {key}= is required")
    return fn(model_or_params, **config)
