"""Command line: `python -m jaxdl.main --config configs/esc50.py [--mode=MODE] [--config.KEY=VALUE]`.

Parses flags and the config, validates it, dispatches to the mode, and ends by printing one line
of JSON with the mode's headline figures. User errors print one clear message and exit with 2.
"""

import json
import pathlib
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jaxdl import config as config_lib
from jaxdl.errors import JaxdlError
from jaxdl.modes import MODES, ModeArgs, run_mode
from jaxdl.utils import distributed

_CONFIG = config_flags.DEFINE_config_file("config", None, "Task config file, e.g. configs/esc50.py "
                                          "or configs/esc50.py:synthetic.", lock_config=True)
_MODE = flags.DEFINE_enum("mode", "train", MODES, "What to run.")
_WORKDIR = flags.DEFINE_string("workdir", ".", "Where logs/ and checkpoints/ are written.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "checkpoints/<run> to evaluate.")
_SPLIT = flags.DEFINE_enum("split", "test", ("train", "val", "test"), "Split that evaluate scores.")
_TORCH_CHECKPOINT = flags.DEFINE_string("torch_checkpoint", None,
                                        "import_torch: a PyTorch checkpoint (artifacts/best.ckpt).")
_RUNS = flags.DEFINE_list("runs", [], "compare: run names, logs/<run> directories or globs.")


def parse_flags(argv: list[str]) -> list[str]:
    """absl parsing, with an unknown `--config.KEY` reported as a clean error, not a traceback."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        print(f"error: {err}\nPass --help to list the flags.", file=sys.stderr)
        sys.exit(2)
    except (AttributeError, KeyError) as err:
        overrides = [a.split("=")[0] for a in argv if a.startswith("--config.")]
        print(f"error: unknown config key among {overrides}: {err}", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _CONFIG.value is None:
        raise app.UsageError("--config is required, e.g. --config configs/esc50.py")
    logging.set_verbosity(logging.ERROR)  # Orbax and TFDS are chatty at WARNING
    distributed.initialize()  # joins the other processes of a SLURM / TPU pod / explicit job
    try:
        config_lib.validate(_CONFIG.value)
        args = ModeArgs(checkpoint=_CHECKPOINT.value, split=_SPLIT.value,
                        torch_checkpoint=_TORCH_CHECKPOINT.value, runs=tuple(_RUNS.value))
        result = run_mode(_MODE.value, _CONFIG.value, pathlib.Path(_WORKDIR.value), args)
    except JaxdlError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(getattr(err, "exit_code", 2))  # 2: bad input; 143: pre-empted, resumable
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
