"""Config defaults shared by every task, presets, and start-up validation.

Each task's `configs/<task>.py` starts from `base_config` and sets its own keys; `validate`
rejects bad values at start-up with the key and the allowed values, before any compute.
"""

import ast
import copy
import difflib
import importlib.machinery
import importlib.resources
import importlib.util
import math
import pathlib
import re
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import ml_collections

from jaxdl.checks import check, check_choice, check_range
from jaxdl.errors import ConfigError
from jaxdl.training import optim_config

PRESETS: dict[str, Callable[[ml_collections.ConfigDict], None]] = {}


def _preset(name: str):
    def register(fn):
        PRESETS[name] = fn
        return fn

    return register


@_preset("synthetic")
def _synthetic(config: ml_collections.ConfigDict) -> None:
    config.data.source = "synthetic"


def base_config(task: str) -> ml_collections.ConfigDict:
    """Keys every task has; the task's config file adds data/model/augment specifics."""
    config = ml_collections.ConfigDict()
    config.task = task
    config.seed = 42
    config.run_name = ""  # empty: derived from task, mode, key hyper-parameters and a timestamp

    config.data = ml_collections.ConfigDict()
    config.data.source = "auto"  # auto: data.dir if set, else download | synthetic
    config.data.dir = ""  # dataset in its official on-disk layout
    config.data.cache_dir = ""  # empty: $JAXDL_CACHE or ~/.cache/jaxdl
    config.data.workers = -1  # grain worker processes; -1: auto (0 on CPU, sized from the host's
    # CPUs on accelerators); 0: in-process, threads only
    config.data.prefetch = 0  # batches the pipeline prepares ahead; 0: auto
    # Normalisation and the augmentations the step can draw: auto (in the jitted step on
    # accelerators, on the host on CPU) | host | device (jaxdl/data/device_inputs.py)
    config.data.augment_on = "auto"
    config.data.on_corrupt = "error"  # error | skip (skipped items are counted in the log)

    config.train = ml_collections.ConfigDict()
    config.train.optimizer = "adamw"  # adamw | adam_l2 (torch Adam coupled L2) | sgd
    config.train.momentum = 0.9  # sgd only
    config.train.batch_size = 64
    config.train.eval_batch_size = 0  # 0: same as batch_size
    config.train.epochs = 10
    config.train.lr = 1e-3
    config.train.weight_decay = 0.0
    config.train.schedule = "none"  # schedule of the peak train.lr: none (constant) | step | cosine
    config.train.warmup_steps = 0  # linear warmup from 0 to the peak lr over this many steps
    config.train.step_size = 0  # step: epochs between two decays (torch StepLR stepped per epoch)
    config.train.gamma = 0.1  # step: the lr's factor at each decay
    config.train.overfit_n = 0  # M3: >0 trains and validates on a fixed N-example subset
    config.train.log_every_steps = 20
    config.train.best_metric = "accuracy"
    config.train.best_mode = "max"  # max | min
    config.train.evaluate_test = True  # after training, score the best checkpoint on the test split
    config.train.nan_policy = (
        "stop"  # stop: end the run at a non-finite loss/gradient | skip the step
    )
    config.train.checkpoint_every_steps = 0  # >0: also save a resumable checkpoint mid-epoch
    config.train.resume = True  # rerunning the same command resumes its unfinished run

    # --mode=lr_finder (M4): exponential sweep start -> end over `steps`, stopped at a non-finite
    # loss or when the (EMA-smoothed when smoothing > 0) loss exceeds divergence_factor x its best
    # after min_steps. Task configs set the reference's values.
    config.lr_finder = ml_collections.ConfigDict(
        dict(
            start=1e-7,
            end=1.0,
            steps=100,
            smoothing=0.0,
            divergence_factor=4.0,
            min_steps=10,
            batch_size=0,
        )
    )  # batch_size 0: train.batch_size

    # --mode=grid_search (M5; M8 with a narrower grid): lr x weight_decay x the task's two model
    # hyper-parameters (grid.model.<key>) x seeds, `epochs` each. Members sharing an architecture
    # train together; strategy vmap | sequential | auto (sequential on CPU, vmap on accelerators).
    config.grid = ml_collections.ConfigDict(
        dict(
            lr=(1e-3,),
            weight_decay=(0.0,),
            seeds=(42,),
            epochs=3,
            strategy="auto",
            memory_limit_gb=0.0,  # vmap groups must fit this; 0: the device's own memory
            model=ml_collections.ConfigDict(),
        )
    )

    # --mode=compare (M7): with `run=True`, trains the baseline (this config) and one variant per
    # listed value, each changing one factor (lr, weight_decay, a model hyper-parameter), for
    # `epochs` (0: train.epochs), then overlays their curves.
    config.compare = ml_collections.ConfigDict(
        dict(run=False, epochs=0, lr=(), weight_decay=(), model=ml_collections.ConfigDict())
    )

    # --mode=analyze (D1-D11, M0-M2): examples shown per figure; recompute the dataset mean/std.
    config.analyze = ml_collections.ConfigDict(dict(examples=3, mean_std=False))

    # How jaxdl runs JAX, whatever the task: where compiled programs are kept between runs
    # ("auto": beside the data cache; "off"; or a folder; $JAXDL_COMPILE_CACHE overrides) and the
    # float32 matmul/conv precision ("default": the backend's; "highest": full float32).
    config.runtime = ml_collections.ConfigDict(
        dict(compile_cache="auto", matmul_precision="default")
    )

    # --mode=bench: median step times on random input of the model's shape.
    # grid: also time the train step of a grid group of this architecture; pipeline: also time the
    # train split's input pipeline (host only).
    config.bench = ml_collections.ConfigDict(dict(warmup=2, steps=10, grid=True, pipeline=True))
    return config


def _config_dir() -> pathlib.Path:
    """The checkout's top-level configs/ folder, which setup.py installs as the package
    jaxdl.configs: an installed jaxdl finds its task configs from any folder. A checkout put on
    sys.path without `pip install` has only the folder."""
    try:
        return pathlib.Path(importlib.resources.files("jaxdl.configs"))
    except ModuleNotFoundError:
        return pathlib.Path(__file__).resolve().parents[1] / "configs"


# The task config files, one `<task>.py` per task: what `--config <task>` names.
CONFIG_DIR = _config_dir()


def task_config_names() -> list[str]:
    """The tasks with a config file in CONFIG_DIR."""
    return sorted(path.stem for path in CONFIG_DIR.glob("*.py") if path.stem != "__init__")


def task_config_file(task: str) -> pathlib.Path:
    """The config file of `task` in CONFIG_DIR, or a ConfigError listing the tasks that have one."""
    names = task_config_names()
    if task not in names:
        raise ConfigError(
            f"no config file for task {task!r}: the task configs are "
            f"{', '.join(names)} (in {CONFIG_DIR}); a config file elsewhere is "
            "passed by its path, e.g. --config my_configs/my_task.py"
        )
    return CONFIG_DIR / f"{task}.py"


def config_path(argument: str | pathlib.Path) -> pathlib.Path:
    """The file `--config ARGUMENT` names: a task name (`esc50`: a Python identifier that is not a
    file here) is its task config; anything else (`configs/esc50.py`, a pathlib.Path) a path."""
    is_name = isinstance(argument, str) and argument.isidentifier()
    if is_name and not pathlib.Path(argument).is_file():
        return task_config_file(argument)
    return pathlib.Path(argument)


def load_task_config(task: str, preset: str | None = None) -> ml_collections.ConfigDict:
    """`configs/<task>.py:get_config(preset)`, read from the file as `--config` reads it: the task's
    defaults, against which a run's config is compared (report) or changed (tests)."""
    return load_config_file(task_config_file(task), preset)


def load_config_file(
    path: str | pathlib.Path, preset: str | None = None
) -> ml_collections.ConfigDict:
    """`get_config(preset)` of the config file `path` (or of a task name's config file, see
    `config_path`), as `--config PATH[:PRESET]` loads it.

    Every way the file can fail (missing, a folder, a syntax error, no `get_config`, an unknown
    preset, an exception while it runs) is a ConfigError naming the file, and the line where there
    is one: config_flags would print a traceback, or defer the error to the first use.
    """
    argument = f"--config {path}{f':{preset}' if preset else ''}"
    if not str(path):
        raise ConfigError("--config is empty; expected a config file such as configs/esc50.py")
    try:
        path = config_path(path)
    except ConfigError as err:
        raise ConfigError(f"{argument}: {err}") from err
    if not path.is_file():
        state = "is a folder" if path.is_dir() else "does not exist"
        raise ConfigError(
            f"{argument}: {path} {state}; expected a config file such as "
            f"configs/esc50.py (the task configs are in {CONFIG_DIR})"
        )
    try:
        source = path.read_text()
        defines = {
            node.name
            for node in ast.parse(source, str(path)).body
            if isinstance(node, ast.FunctionDef)
        }
    except SyntaxError as err:
        text = f" in {err.text.strip()!r}" if err.text and err.text.strip() else ""
        raise ConfigError(
            f"{argument}: syntax error in {path} line {err.lineno}{text}: {err.msg}; fix the file"
        ) from err
    except (OSError, ValueError) as err:  # unreadable, or not text (UnicodeDecodeError)
        raise ConfigError(f"{argument}: cannot read {path} as Python source ({err})") from err
    if "get_config" not in defines:
        raise ConfigError(
            f"{argument}: {path} defines no get_config() function; a config file "
            "defines get_config(preset=None) returning a ConfigDict, like "
            "configs/esc50.py"
        )
    # Any file name, as config_flags reads it: the default loader would skip a name without .py.
    loader = importlib.machinery.SourceFileLoader(f"config_{path.stem}", str(path))
    spec = importlib.util.spec_from_file_location(loader.name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        config = module.get_config(*([preset] if preset else []))
    except ConfigError as err:
        raise ConfigError(f"{argument}: {err}") from err
    except Exception as err:  # noqa: BLE001 (the file is user code; any mistake in it is theirs)
        lines = [
            frame.lineno
            for frame in traceback.extract_tb(err.__traceback__)
            if pathlib.Path(frame.filename).resolve() == path.resolve()
        ]
        where = f" line {lines[-1]}" if lines else ""
        raise ConfigError(
            f"{argument}: running {path}{where} raised {type(err).__name__}: {err}; fix the file"
        ) from err
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(
            f"{argument}: get_config() in {path} returned {type(config).__name__}, "
            "not a ml_collections.ConfigDict (a missing return statement?)"
        )
    return config


def flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    """A nested config dict as {"train.lr": 0.01, …}: the dotted keys `--config.KEY` names."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _key_paths(tree: Mapping, prefix: str = "") -> Iterable[str]:
    """Every dotted key of a nested dict, sections included ("train", "train.lr", …)."""
    for key, value in tree.items():
        yield f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _key_paths(value, f"{prefix}{key}.")


# Names other frameworks give jaxdl's keys: `--config.train.learning_rate` suggests train.lr.
_SYNONYMS = {"learning_rate": "lr", "wd": "weight_decay", "num_epochs": "epochs"}


def _closest_key(key: str, keys: list[str]) -> str:
    """ "; did you mean K?" for the existing key nearest to a mistyped one, or ""."""
    *section, last = key.split(".")
    last = _SYNONYMS.get(last, last)
    close = difflib.get_close_matches(".".join([*section, last]), keys, n=1, cutoff=0.7)
    close = close or [k for k in keys if k.rsplit(".", 1)[-1] == last][:3]
    return f"; did you mean {' or '.join(close)}?" if close else ""


def check_override_keys(config: ml_collections.ConfigDict, keys: Iterable[str]) -> None:
    """Each `--config.KEY` must name a key or section of `config`. ConfigError naming the first
    unknown one and the closest existing key (config_flags reports only its last part)."""
    tree = config.to_dict()
    known = set(_key_paths(tree))
    for key in keys:
        if re.sub(r"\[\d+\]", "", key) not in known:  # `a.b[0]` indexes a tuple value a.b
            raise ConfigError(
                f"unknown config key {key!r} (--config.{key})"
                f"{_closest_key(key, list(flatten(tree)))}"
            )


def apply_preset(
    config: ml_collections.ConfigDict, preset: str | None
) -> ml_collections.ConfigDict:
    """Applies a named preset (`configs/<task>.py:NAME`)."""
    if preset:
        if preset not in PRESETS:
            raise ConfigError(
                f"unknown preset {preset!r}; the presets are {sorted(PRESETS)}, "
                "given after the file name (configs/<task>.py:synthetic), or none "
                "for the task's defaults"
            )
        PRESETS[preset](config)
    return config


def _validate_lr_finder(config: ml_collections.ConfigDict) -> None:
    check_range(config, "lr_finder.start", 0.0, low_inclusive=False)
    check(
        config.lr_finder.end > config.lr_finder.start,
        "lr_finder.end",
        config.lr_finder.end,
        f"a learning rate above lr_finder.start ({config.lr_finder.start})",
    )
    check_range(config, "lr_finder.steps", 2)
    check(
        0.0 <= config.lr_finder.smoothing < 1.0,
        "lr_finder.smoothing",
        config.lr_finder.smoothing,
        "an EMA factor in [0, 1) (0: raw loss)",
    )
    check_range(config, "lr_finder.divergence_factor", 1.0, low_inclusive=False)
    check_range(config, "lr_finder.min_steps", 0)
    check_range(config, "lr_finder.batch_size", 0)


def _validate_grid(config: ml_collections.ConfigDict, task) -> None:
    """Value lists of grid/compare; each member is validated again as a whole config when built."""
    from jaxdl.training.group import STRATEGIES

    grid = config.grid
    for key in ("lr", "weight_decay", "seeds"):
        check(len(tuple(grid[key])) > 0, f"grid.{key}", grid[key], "a non-empty list of values")
    check(
        all(isinstance(v, (int, float)) and v > 0 for v in grid.lr),
        "grid.lr",
        grid.lr,
        "positive learning rates",
    )
    for section in ("grid", "compare"):
        check(
            all(isinstance(v, (int, float)) and v >= 0 for v in config[section].weight_decay),
            f"{section}.weight_decay",
            config[section].weight_decay,
            "non-negative values",
        )
    check(
        all(isinstance(v, (int, float)) and v > 0 for v in config.compare.lr),
        "compare.lr",
        config.compare.lr,
        "positive learning rates",
    )
    check(
        all(isinstance(s, int) and s >= 0 for s in grid.seeds),
        "grid.seeds",
        grid.seeds,
        "non-negative integer seeds",
    )
    check_range(config, "grid.epochs", 1)
    check_range(config, "compare.epochs", 0)
    check_choice(config, "grid.strategy", ("auto", *STRATEGIES))
    from jaxdl.training import grid as grid_lib  # grid.memory_limit_gb

    grid_lib.check_config(config)
    allowed = task.hyperparameters
    for section in ("grid", "compare"):
        for key in config[section].model:
            check(
                key in allowed,
                f"{section}.model.{key}",
                config[section].model[key],
                f"a list for one of the model's hyper-parameters {list(allowed)}",
            )
    for key in grid.model:
        check(
            len(tuple(grid.model[key])) > 0,
            f"grid.model.{key}",
            grid.model[key],
            "a non-empty list of values",
        )
    _validate_model_values(config, task)


def _validate_model_values(config: ml_collections.ConfigDict, task) -> None:
    """Each value listed in grid.model / compare.model must make a valid model config, so a bad
    member fails at start-up, not hours later when its turn comes."""
    for section in ("grid", "compare"):
        for key in config[section].model:
            for value in config[section].model[key]:
                listed = f"{section}.model.{key} lists {value!r}, which is invalid"
                member = copy.deepcopy(config)
                try:
                    member.model[key] = value
                except TypeError as err:
                    raise ConfigError(
                        f"{listed}: expected values of model.{key}'s type "
                        f"({type(config.model[key]).__name__})"
                    ) from err
                try:
                    task.validate(member)
                except ConfigError as err:
                    raise ConfigError(f"{listed}: {err}") from err


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, (tuple, list)) and any(_non_finite(v) for v in value)


def _validate_finite(config: ml_collections.ConfigDict) -> None:
    """`--config.train.lr=inf` (or nan, 1e400) parses as a float; no key means anything by it."""
    for key, value in flatten(config.to_dict()).items():
        check(not _non_finite(value), key, value, "a finite number (not inf or nan)")


# A run name is a folder name under logs/ and checkpoints/, and ends up in generated files.
_RUN_NAME = re.compile(r"[A-Za-z0-9_+=,@][A-Za-z0-9._+=,@-]{0,199}")


def _validate_run_name(config: ml_collections.ConfigDict) -> None:
    name = config.run_name
    check(
        name == "" or (isinstance(name, str) and _RUN_NAME.fullmatch(name) is not None),
        "run_name",
        name,
        "at most 200 letters, digits and . _ - + = , @ (no spaces, quotes or "
        "'/'), not starting with '.' or '-': it names the folders logs/<run_name> and "
        "checkpoints/<run_name>; or '' for a name derived from the config",
    )


def validate(config: ml_collections.ConfigDict) -> None:
    """Rejects bad values at start-up, naming the key and the allowed values: the generic keys
    here, the task's own keys, its model's and the optimizer's by their owners."""
    # Imported here: config files (and their mistakes) then load without Flax and JAX (seconds).
    from jaxdl import tasks

    task = tasks.by_name(config.task)
    try:
        _validate(config, task)
    except (AttributeError, KeyError) as err:  # ConfigDict's missing key, e.g. "'image_size'"
        missing = str(err).strip("'\"")
        raise ConfigError(
            f"the config has no key {missing!r} that task {config.task!r} needs: "
            f"start from configs/{config.task}.py"
        ) from err


def _validate(config: ml_collections.ConfigDict, task) -> None:
    # Each allowed-values list belongs to the module that acts on the value.
    from jaxdl.data.cache import ON_CORRUPT
    from jaxdl.data.locate import SOURCES
    from jaxdl.training.checkpoint import BEST_MODES
    from jaxdl.training.steps import NAN_POLICIES

    _validate_finite(config)
    _validate_run_name(config)
    check(
        isinstance(config.seed, int) and config.seed >= 0,
        "seed",
        config.seed,
        "a non-negative integer",
    )
    check_choice(config, "data.source", SOURCES)
    check_choice(config, "data.on_corrupt", ON_CORRUPT)
    check_range(config, "data.workers", -1)
    check_range(config, "data.prefetch", 0)
    optim_config.check_config(config)
    check_choice(config, "train.best_mode", BEST_MODES)
    check_range(config, "train.batch_size", 1)
    check_range(config, "train.eval_batch_size", 0)
    check_range(config, "train.epochs", 1)
    check_range(config, "train.overfit_n", 0)
    check_range(config, "train.log_every_steps", 0)
    check_choice(config, "train.nan_policy", NAN_POLICIES)
    check_range(config, "train.checkpoint_every_steps", 0)
    check_range(config, "analyze.examples", 1)
    check_range(config, "bench.warmup", 1)
    check_range(config, "bench.steps", 1)
    from jaxdl.utils import runtime  # the runtime.* keys: compile cache, matmul precision

    runtime.check_config(config)
    task.validate(config)
    _validate_lr_finder(config)
    _validate_grid(config, task)  # after the task's keys: it validates each grid member's model
