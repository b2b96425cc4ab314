"""Composing initializers and applying them to parameter trees by path."""
