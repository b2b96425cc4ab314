"""jaxinit internals: the public names are re-exported by ``jaxinit`` and its modules.

The folders are the layers of the design; each imports only from the layers above it:

* ``core``: the initializer protocol, sampling in every dtype (threefry bits, sample
  wide then cast), fans, gains and descriptions;
* ``schemes``: the schemes themselves (classic, orthogonal, LoRA, state-space, PyTorch's);
* ``compose``: combinators, parameter paths, ``reinit`` and other frameworks' adapters;
* ``params``: width and depth parametrizations (muP, spectral, depth rules) and recipes;
* ``pretrained``: checkpoint formats, layouts, name rules, loading, streaming, export;
* ``diagnose``: probes, signal propagation, LSUV, mean-field theory, ``diagnose``;
* ``compare``: the main job, ``compare_model`` and the ``jaxinit compare`` command.
"""
