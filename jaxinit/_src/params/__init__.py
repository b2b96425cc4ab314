"""Width and depth parametrizations (muP, spectral, depth rules) and framework recipes."""
