"""jaxdl: the CSC8607 deep-learning course method in JAX/Flax, for four real tasks."""

__version__ = "0.1.0"
