"""Measuring a model at initialization: probes, signal propagation, LSUV, mean-field theory."""
