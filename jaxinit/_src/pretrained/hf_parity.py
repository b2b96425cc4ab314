"""`jaxinit.hf.parity_check`: a Flax forward against the PyTorch model of an HF directory."""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from jaxinit._src.core.base import check_choice
from jaxinit._src.pretrained.errors import PretrainedError

Task = Literal["causal-lm", "masked-lm", "image-classification"]
# task -> (transformers auto class, what the inputs are, their rank, integer inputs)
_TASKS = {
    "causal-lm": ("AutoModelForCausalLM", "token ids (B, T)", 2, True),
    "masked-lm": ("AutoModelForMaskedLM", "token ids (B, T)", 2, True),
    "image-classification": ("AutoModelForImageClassification",
                             "pixel values (B, C, H, W)", 4, False),
}


@dataclasses.dataclass(frozen=True)
class ParityReport:
    """Logits of a Flax forward compared with ``transformers``' on the same inputs.

    Attributes:
      max_abs_diff: :math:`\\max |z_{flax} - z_{torch}|` over every logit.
      kl: per-position :math:`\\mathrm{KL}(p_{torch} \\| p_{flax})` in nats, shape (B, T)
        (language models) or (B,) (image classification).
      top1: per-position agreement of the argmax, bool of the same shape.
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
    inputs: Any,
    *,
    task: Task = "causal-lm",
    atol: float = 1e-4,
) -> ParityReport:
    r"""Run the HF directory's PyTorch model and `forward` on `inputs`; compare the logits.

    The reference is ``transformers``' auto class for `task` (``AutoModelForCausalLM``,
    ``AutoModelForMaskedLM`` or ``AutoModelForImageClassification``) loaded with
    ``from_pretrained(hf_dir)`` in float32, offline (``local_files_only=True``), in eval
    mode. `forward` gets the same array the PyTorch model does: token ids, or pixel values
    in PyTorch's (B, C, H, W) layout (a Flax model that takes NHWC transposes them). With
    :math:`p = \mathrm{softmax}` of the reference logits and :math:`q` of `forward`'s, per
    position (per image) :math:`\mathrm{KL}(p \| q) = \sum_v p_v (\log p_v - \log q_v)`,
    computed in float64.

    Args:
      hf_dir: a Hugging Face model directory (``config.json`` and weights).
      forward: the Flax model's forward, `inputs` -> logits: (B, T, vocab) for the
        language models, (B, classes) for image classification.
      inputs: integer token ids (B, T), or float pixel values (B, C, H, W).
      task: ``"causal-lm"``, ``"masked-lm"`` or ``"image-classification"``.
      atol: pass threshold on the max abs logit difference.

    Returns:
      A :class:`ParityReport`; ``report.passed`` is the verdict.

    Raises:
      PretrainedError: `hf_dir` has no ``config.json``.
      ImportError: torch or transformers is not installed.
      ValueError: an unknown `task`, `inputs` of the wrong rank or kind for it, or logits
        of the wrong shape.

    Example (needs an HF directory and a Flax forward: tests/test_hf_llama.py and
    tests/test_hf_encoders.py run it)::

      report = jaxinit.hf.parity_check(path, model, tokens)
      print(report)
      # parity PASS: max |logit diff| 6.6e-06 (atol 0.0001), max KL 1.2e-12 nats, ...
      jaxinit.hf.parity_check(vit_dir, lambda x: vit(x.transpose(0, 2, 3, 1)), pixels,
                              task="image-classification")

    References:
      ``from_pretrained``: https://huggingface.co/docs/transformers/main_classes/model ;
      the auto classes: https://huggingface.co/docs/transformers/model_doc/auto
    """
    name = "jaxinit.hf.parity_check"
    check_choice(name, "task", task, tuple(_TASKS))
    auto, what, rank, integer = _TASKS[task]
    inputs = np.asarray(inputs)
    kind_ok = (np.issubdtype(inputs.dtype, np.integer) if integer
               else np.issubdtype(inputs.dtype, np.floating))
    if inputs.ndim != rank or not kind_ok:
        raise ValueError(f"{name}: inputs for task={task!r} must be {what}, "
                         f"{'integer' if integer else 'float'}; got shape {inputs.shape} "
                         f"dtype {inputs.dtype}")
    if not (pathlib.Path(hf_dir) / "config.json").is_file():
        raise PretrainedError(f"{name}: hf_dir={os.fspath(hf_dir)!r} is not a Hugging Face "
                              "model directory (no config.json)")
    try:
        import torch
        import transformers
    except ImportError as e:
        raise ImportError(f"{name} needs torch and transformers installed: {e}") from e
    model = getattr(transformers, auto).from_pretrained(
        os.fspath(hf_dir), dtype=torch.float32, local_files_only=True).eval()
    x = torch.as_tensor(inputs, dtype=torch.long if integer else torch.float32)
    with torch.no_grad():
        ref = model(x).logits.double().numpy()
    got = np.asarray(forward(inputs), dtype=np.float64)
    if got.shape != ref.shape:
        raise ValueError(f"{name}: forward returned logits of shape {got.shape}, expected "
                         f"{ref.shape} (as transformers' {auto})")
    logp, logq = _log_softmax(ref), _log_softmax(got)
    kl = (np.exp(logp) * (logp - logq)).sum(axis=-1)
    top1 = ref.argmax(axis=-1) == got.argmax(axis=-1)
    return ParityReport(float(np.abs(got - ref).max()), kl, top1, float(atol))
