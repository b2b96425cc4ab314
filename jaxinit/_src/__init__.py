"""jaxinit internals: the public names are re-exported by ``jaxinit`` and its modules."""
