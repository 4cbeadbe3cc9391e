"""Errors a user can act on.

`jaxdl.main` prints these as one clear message (no traceback) and exits with status 2, before any
compute is spent. Every message names the file, key or value at fault and what was expected.
"""


class JaxdlError(Exception):
    """Base class for user-facing errors."""


class ConfigError(JaxdlError):
    """A config key is unknown, has the wrong type, or a value is out of range."""


class DataError(JaxdlError):
    """A dataset folder, annotation file or data file is missing, malformed or corrupt."""


class CheckpointError(JaxdlError):
    """A checkpoint is missing or does not match the model it is restored into."""


class DependencyError(JaxdlError):
    """An optional package a mode needs (torch for import_torch) is not installed."""
