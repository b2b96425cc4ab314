"""Pretrained initialization: safe loading, layout conversion, partial loads with a report.

One module per concern: ``errors`` (the exception type), ``formats`` (``open_weights``),
``initializer`` (``pretrained``), ``merge`` (``load_pretrained``), ``report``
(``LoadReport``), ``layout`` (PyTorch-to-Flax converters), ``torch_rules``, and for
Hugging Face ``hf_dir`` (directories), ``hf_rules`` (family rules), ``hf_rope`` (RoPE
layouts) and ``hf_parity`` (logit parity).
Only jax and numpy are imported at module level; format libraries are imported lazily.
"""
