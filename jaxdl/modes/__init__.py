"""One module per mode; each exposes `run(config, workdir, args) -> dict` (the mode's JSON line).

`ModeArgs` carries the command-line flags that are not config keys (paths of existing runs and
checkpoints), so modes never read absl flags themselves and tests call them directly.
"""

import dataclasses
import importlib
import os
import pathlib
import pwd

import ml_collections

from jaxdl import config as config_lib
from jaxdl.errors import ConfigError

MODES = (
    "train",
    "evaluate",
    "lr_finder",
    "grid_search",
    "analyze",
    "compare",
    "report",
    "bench",
    "import_torch",
)
WRITES_NOTHING = ("bench",)  # every other mode writes under <workdir>/logs or /checkpoints
READS_DATA = ("train", "evaluate", "lr_finder", "grid_search", "analyze", "bench", "import_torch")


@dataclasses.dataclass(frozen=True)
class ModeArgs:
    checkpoint: str | None = None  # evaluate: checkpoints/<run>
    split: str = "test"  # evaluate: the split to score
    torch_checkpoint: str | None = None  # import_torch: a PyTorch checkpoint file
    runs: tuple[str, ...] = ()  # compare: run names, log directories or globs


def _user() -> str:
    uid = os.geteuid()
    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:  # no passwd entry, as in some containers
        return f"uid {uid}"


def _require_writable(folder: pathlib.Path, what: str, fix: str) -> None:
    """ConfigError unless `folder` exists as a writable folder or can be created: a file in its
    place or an unwritable nearest existing parent fails here, not after minutes of compute."""
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{what}: {existing} is a file, not a folder; {fix}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{what}: folder {existing} is not writable by {_user()}; {fix}")


def computes(mode: str, config: ml_collections.ConfigDict) -> bool:
    """Whether `mode` reads data and compiles (report, and compare of existing runs, do not)."""
    return mode in READS_DATA or (mode == "compare" and config.compare.run)


def check_folders(mode: str, config: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
    """The folders `mode` writes (the workdir's logs/ and checkpoints/, the data cache) must be
    writable; ConfigError naming the folder otherwise."""
    if mode not in WRITES_NOTHING:
        for folder in (workdir / "logs", workdir / "checkpoints"):
            _require_writable(
                folder,
                f"--workdir {workdir}",
                "pass --workdir=<a folder you can "
                "write> (it is created if missing) or change its permissions",
            )
    if computes(mode, config):
        from jaxdl.data.cache import cache_root  # imports JAX (seconds): only once flags are read

        root = cache_root(config)
        _require_writable(
            root,
            f"data cache {root} (data.cache_dir, else $JAXDL_CACHE, else ~/.cache/jaxdl)",
            "pass --config.data.cache_dir=<a folder you can write> or change its permissions",
        )


def check_keys(config: ml_collections.ConfigDict) -> None:
    """Every key of `config` must be one its task's config file defines: a key added in Python
    (`config.model.dropout = 0.5` for a model without dropout) is refused as `--config.KEY` is on
    the command line, with the same suggestion, instead of being silently ignored. Keys under
    grid.model and compare.model are checked by `config.validate` against the model's
    hyper-parameters; a task without a config file among the task configs has no reference."""
    if config.task not in config_lib.task_config_names():
        return
    keys = config_lib.flatten(config.to_dict())
    config_lib.check_override_keys(
        config_lib.load_task_config(config.task),
        [k for k in keys if not k.startswith(("grid.model.", "compare.model."))],
    )


def run_mode(
    mode: str, config: ml_collections.ConfigDict, workdir: pathlib.Path, args: ModeArgs
) -> dict:
    """Validates the config and the folders the mode writes, sets JAX up for the run (compilation
    cache, matmul precision), then imports the mode lazily (each pulls in only what it needs) and
    runs it."""
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; allowed: {list(MODES)}")
    config_lib.validate(config)
    check_keys(config)
    check_folders(mode, config, pathlib.Path(workdir))
    from jaxdl.utils import runtime  # imports JAX (seconds): only once flags are read

    runtime.configure(config, compiles=computes(mode, config))
    return importlib.import_module(f"jaxdl.modes.{mode}").run(config, workdir, args)
