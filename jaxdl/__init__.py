"""jaxdl: the CSC8607 deep-learning course method in JAX/Flax, for four real tasks.

The Python API (docs/python-api.md) is `jaxdl.load_config` and `jaxdl.run`, from `jaxdl.api`,
imported on first use: `import jaxdl` itself loads nothing else.
"""

__version__ = "0.1.0"
__all__ = ["load_config", "run"]


def __getattr__(name: str):
    if name in __all__:
        from jaxdl import api

        return getattr(api, name)
    raise AttributeError(f"module 'jaxdl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
