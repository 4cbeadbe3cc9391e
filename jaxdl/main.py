"""Command line: `python -m jaxdl.main --config esc50 [--mode=MODE] [--config.KEY=VALUE]`.

`--config` takes a task name (`esc50`, `esc50:synthetic` with a preset), which names the task's
config file shipped with jaxdl (configs/esc50.py in a checkout), or the path of a config file.

Parses flags and the config, validates it, dispatches to the mode, and ends by printing one line
of JSON with the mode's headline figures. User errors print one line `error: ...` and exit with 2.
"""

import json
import pathlib
import re
import sys
from typing import NoReturn

from absl import app, flags, logging
from ml_collections import config_flags

from jaxdl import config as config_lib
from jaxdl.errors import JaxdlError
from jaxdl.modes import MODES, ModeArgs, run_mode


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


try:  # defining it reads the `--flagfile`s in sys.argv, so a missing one fails here
    _CONFIG = config_flags.DEFINE_config_file(
        "config",
        None,
        "A task name or a config file, with an optional preset: esc50, "
        "esc50:synthetic, configs/esc50.py or my_config.py:synthetic.",
        lock_config=True,
    )
except flags.Error as err:
    _fail(f"{err}; pass --help to list the flags")
_MODE = flags.DEFINE_enum("mode", "train", MODES, "What to run.")
_WORKDIR = flags.DEFINE_string("workdir", ".", "Where logs/ and checkpoints/ are written.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "checkpoints/<run> to evaluate.")
_SPLIT = flags.DEFINE_enum("split", "test", ("train", "val", "test"), "Split that evaluate scores.")
_TORCH_CHECKPOINT = flags.DEFINE_string(
    "torch_checkpoint", None, "import_torch: a PyTorch checkpoint (artifacts/best.ckpt)."
)
_RUNS = flags.DEFINE_list("runs", [], "compare: run names, logs/<run> directories or globs.")

# `--config PATH[:PRESET]` and the `--config.KEY=VALUE` overrides, as config_flags finds them.
_CONFIG_FLAG = re.compile(r"-{1,2}config(?:=(.*))?")
_OVERRIDE = re.compile(r"-{1,2}(?:no)?config\.([^=]+)")


def _config_argument(argv: list[str]) -> tuple[int, str] | None:
    """Where the value of the last `--config` (absl keeps the last) is: its index in argv and the
    prefix before it, `--config=X` (index of that argument, '--config=') or `--config X` (index of
    X, '')."""
    found = None
    for index, arg in enumerate(argv[1:], 1):
        if arg == "--":
            break
        if match := _CONFIG_FLAG.fullmatch(arg):
            if match.group(1) is not None:
                found = (index, arg[: match.start(1)])
            else:
                found = (index + 1, "") if index + 1 < len(argv) else None
    return found


def _check_config(argv: list[str]) -> list[str]:
    """Loads `--config` and checks the override keys before config_flags does (it answers a missing
    file, a syntax error, an unknown preset or an unknown key with a traceback). Returns argv with
    a task name (`--config esc50:synthetic`) replaced by the path of its config file, which is what
    config_flags loads."""
    found = _config_argument(argv)
    if found is None:
        return argv  # main() says --config is required
    index, prefix = found
    name, colon, preset = argv[index].removeprefix(prefix).partition(":")
    config = config_lib.load_config_file(name, preset or None)
    overrides = [match.group(1) for arg in argv if (match := _OVERRIDE.match(arg))]
    config_lib.check_override_keys(config, overrides)
    return [
        *argv[:index],
        f"{prefix}{config_lib.config_path(name)}{colon}{preset}",
        *argv[index + 1 :],
    ]


def parse_flags(argv: list[str]) -> list[str]:
    """absl parsing, with every mistake in the flags or the config file a one-line error."""
    try:
        return flags.FLAGS(_check_config(argv))
    except JaxdlError as err:
        _fail(str(err))
    except flags.Error as err:
        _fail(f"{err}; pass --help to list the flags")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        _fail(
            f"unexpected arguments {argv[1:]}: flags are written --name=value, and a value with "
            "spaces needs quotes"
        )
    if _CONFIG.value is None:
        _fail("--config is required, e.g. --config configs/esc50.py or configs/esc50.py:synthetic")
    logging.set_verbosity(logging.ERROR)  # Orbax and TFDS are chatty at WARNING
    # Imported here, not at the top: JAX takes seconds to import, and flag errors need none of it.
    from jaxdl.utils import distributed

    try:
        distributed.initialize()  # joins the other processes of a SLURM / TPU pod / explicit job
        args = ModeArgs(
            checkpoint=_CHECKPOINT.value,
            split=_SPLIT.value,
            torch_checkpoint=_TORCH_CHECKPOINT.value,
            runs=tuple(_RUNS.value),
        )
        workdir = pathlib.Path(_WORKDIR.value).expanduser()  # `--workdir=~/x` is not expanded
        result = run_mode(_MODE.value, _CONFIG.value, workdir, args)
    except JaxdlError as err:
        print(f"error: {err}", file=sys.stderr)
        # 2: bad input; 128 + signal (143 SIGTERM, 130 Ctrl-C): stopped after saving, resumable
        sys.exit(getattr(err, "exit_code", 2))
    except KeyboardInterrupt:  # Ctrl-C outside the training loop (which saves and stops itself)
        print(
            "error: interrupted (Ctrl-C); files and checkpoints already complete are kept, "
            "rerun the same command to go on",
            file=sys.stderr,
        )
        sys.exit(130)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    from jaxdl.utils import allocator

    allocator.run_under_mimalloc()  # re-executes this command once, mimalloc preloaded
    app.run(main, flags_parser=parse_flags)
