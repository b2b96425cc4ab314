"""Pretrained initialization: safe loading, layout conversion, partial loads with a report.

One module per concern: ``errors`` (the exception type), ``formats`` (``open_weights``),
``initializer`` (``pretrained``), ``plan`` (the one planner of a load: keys mapped to
target leaves, shapes checked), ``merge`` (``load_pretrained``) and ``stream``
(``stream_pretrained``), which carry a plan out, ``report`` (``LoadReport``), ``layout``
(PyTorch-to-Flax converters), ``torch_rules``, and for Hugging Face ``hf_dir``
(directories), ``hf_rules`` (family rules), ``hf_rope`` (RoPE layouts), ``hf_export``
(``save_hf``) and ``hf_parity`` (logit parity).
Only jax and numpy are imported at module level; format libraries are imported lazily.
"""
