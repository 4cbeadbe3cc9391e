"""Bridges to PyTorch: the reference architectures and their checkpoints (needs `jaxdl[torch]`)."""
