"""The initialization schemes: classic, orthogonal, LoRA, SSM and PyTorch's."""
