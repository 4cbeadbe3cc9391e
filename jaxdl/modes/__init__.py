"""One module per mode; each exposes `run(config, workdir, args) -> dict` (the mode's JSON line).

`ModeArgs` carries the command-line flags that are not config keys (paths of existing runs and
checkpoints), so modes never read absl flags themselves and tests call them directly.
"""

import dataclasses
import importlib
import pathlib

import ml_collections

MODES = ("train", "evaluate", "lr_finder", "grid_search", "analyze", "compare", "report", "bench",
         "import_torch")


@dataclasses.dataclass(frozen=True)
class ModeArgs:
    checkpoint: str | None = None  # evaluate: checkpoints/<run>
    split: str = "test"  # evaluate: the split to score
    torch_checkpoint: str | None = None  # import_torch: a PyTorch checkpoint file
    runs: tuple[str, ...] = ()  # compare: run names, log directories or globs


def run_mode(mode: str, config: ml_collections.ConfigDict, workdir: pathlib.Path,
             args: ModeArgs) -> dict:
    """Imports the mode lazily (each pulls in only what it needs) and runs it."""
    if mode not in MODES:
        from jaxdl.errors import ConfigError

        raise ConfigError(f"unknown mode {mode!r}; allowed: {list(MODES)}")
    return importlib.import_module(f"jaxdl.modes.{mode}").run(config, workdir, args)
