"""`jaxinit.hf.parity_check`: a Flax forward against the PyTorch model of an HF directory."""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np

from jaxinit._src.pretrained.errors import PretrainedError


@dataclasses.dataclass(frozen=True)
class ParityReport:
    """Logits of a Flax forward compared with ``transformers``' on the same tokens.

    Attributes:
      max_abs_diff: :math:`\\max |z_{flax} - z_{torch}|` over batch, position and vocabulary.
      kl: per-position :math:`\\mathrm{KL}(p_{torch} \\| p_{flax})` in nats, shape (B, T).
      top1: per-position agreement of the argmax token, bool of shape (B, T).
      atol: the threshold on `max_abs_diff`.
    """

    max_abs_diff: float
    kl: np.ndarray
    top1: np.ndarray
    atol: float

    @property
    def passed(self) -> bool:
        """Whether ``max_abs_diff <= atol``."""
        return self.max_abs_diff <= self.atol

    def __str__(self) -> str:
        return (f"parity {'PASS' if self.passed else 'FAIL'}: max |logit diff| "
                f"{self.max_abs_diff:.3g} (atol {self.atol:g}), max KL {float(self.kl.max()):.3g}"
                f" nats, top-1 agreement {float(self.top1.mean()):.1%}")


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def parity_check(
    hf_dir: str | os.PathLike[str],
    forward: Callable[[Any], Any],
    tokens: Any,
    *,
    atol: float = 1e-4,
) -> ParityReport:
    r"""Run the HF directory's PyTorch model and `forward` on `tokens`; compare the logits.

    The reference is ``transformers.AutoModelForCausalLM.from_pretrained(hf_dir)`` in
    float32, offline (``local_files_only=True``), in eval mode. With :math:`p = \mathrm{softmax}`
    of the reference logits and :math:`q` of `forward`'s, per position
    :math:`\mathrm{KL}(p \| q) = \sum_v p_v (\log p_v - \log q_v)`, computed in float64.

    Args:
      hf_dir: a Hugging Face model directory (``config.json`` and weights).
      forward: the Flax model's forward, int tokens (B, T) -> logits (B, T, vocab).
      tokens: integer token ids of shape (B, T).
      atol: pass threshold on the max abs logit difference.

    Returns:
      A :class:`ParityReport`; ``report.passed`` is the verdict.

    Raises:
      PretrainedError: `hf_dir` has no ``config.json``.
      ImportError: torch or transformers is not installed.
      ValueError: `tokens` not a 2-D integer array, or logits of the wrong shape.

    Example (needs an HF directory and a Flax forward: tests/test_hf_llama.py runs it)::

      report = jaxinit.hf.parity_check(path, model, tokens)
      print(report)
      # parity PASS: max |logit diff| 6.6e-06 (atol 0.0001), max KL 1.2e-12 nats, ...

    References:
      ``from_pretrained``: https://huggingface.co/docs/transformers/main_classes/model
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"jaxinit.hf.parity_check: tokens must be a 2-D integer array (B, T), "
                         f"got shape {tokens.shape} dtype {tokens.dtype}")
    if not (pathlib.Path(hf_dir) / "config.json").is_file():
        raise PretrainedError(f"jaxinit.hf.parity_check: hf_dir={os.fspath(hf_dir)!r} is not a "
                              "Hugging Face model directory (no config.json)")
    try:
        import torch
        import transformers
    except ImportError as e:
        raise ImportError("jaxinit.hf.parity_check needs torch and transformers "
                          f"installed: {e}") from e
    model = transformers.AutoModelForCausalLM.from_pretrained(
        os.fspath(hf_dir), dtype=torch.float32, local_files_only=True).eval()
    with torch.no_grad():
        ref = model(torch.as_tensor(tokens, dtype=torch.long)).logits.double().numpy()
    got = np.asarray(forward(tokens), dtype=np.float64)
    if got.shape != ref.shape:
        raise ValueError(f"jaxinit.hf.parity_check: forward returned logits of shape "
                         f"{got.shape}, expected {ref.shape} (batch, positions, vocab)")
    logp, logq = _log_softmax(ref), _log_softmax(got)
    kl = (np.exp(logp) * (logp - logq)).sum(axis=-1)
    top1 = ref.argmax(axis=-1) == got.argmax(axis=-1)
    return ParityReport(float(np.abs(got - ref).max()), kl, top1, float(atol))
