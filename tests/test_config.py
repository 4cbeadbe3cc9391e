"""Start-up validation: every shipped config passes; each bad value is rejected naming the key
and what is allowed, before any data is read."""

import os
import pathlib
import re
import subprocess
import sys
import sysconfig

import pytest

from jaxdl import config as config_lib
from jaxdl.errors import ConfigError
from tests.helpers import REPO, load_config

TASKS = ("esc50", "tiny_imagenet", "cub200", "celeba")


@pytest.mark.parametrize("preset", [None, "synthetic"])
@pytest.mark.parametrize("task", TASKS)
def test_shipped_configs_are_valid(task, preset):
    config_lib.validate(load_config(task, preset))


def _set(config, key: str, value) -> None:
    *parents, last = key.split(".")
    section = config
    for part in parents:
        section = section[part]
    section[last] = value


# (task, key, bad value, what the message must say after "KEY=VALUE is invalid: expected")
BAD_VALUES = [
    # Common keys; `--config.train.lr=abc` and `--config.train.epochs=1.5` are refused by the
    # flag parser itself (tests/test_main.py).
    ("esc50", "train.lr", -0.1, "a number in (0.0, inf)"),
    ("esc50", "train.lr", 0.0, "a number in (0.0, inf)"),
    ("esc50", "train.weight_decay", -1e-4, "a number in [0.0, inf)"),
    ("esc50", "train.batch_size", 0, "a number in [1, inf)"),
    ("esc50", "train.epochs", 0, "a number in [1, inf)"),
    ("esc50", "train.momentum", 1.5, "a number in [0.0, 1.0]"),
    ("esc50", "train.optimizer", "sgdm", "one of ['adamw', 'adam_l2', 'sgd']"),
    ("esc50", "train.nan_policy", "ignore", "one of ['stop', 'skip']"),
    ("esc50", "train.best_mode", "highest", "one of ['max', 'min']"),
    ("esc50", "seed", -1, "a non-negative integer"),
    ("esc50", "data.on_corrupt", "ignore", "one of ['error', 'skip']"),
    ("esc50", "data.source", "kaggle", "one of ['auto', 'synthetic']"),
    ("esc50", "data.workers", -2, "a number in [-1, inf)"),
    ("esc50", "data.prefetch", -1, "a number in [0, inf)"),
    # ESC-50: `--config.model.channels=32` arrives as (32,).
    ("esc50", "model.channels", (32,), "three positive widths"),
    ("esc50", "model.channels", (32, 64), "three positive widths"),
    ("esc50", "model.channels", (32, 64, 128.0), "three positive widths"),
    ("esc50", "model.channels", ("(32,64,x)",), "three positive widths"),
    ("esc50", "model.kernel_size", 4, "an odd size in [1, 3, 5, 7]"),
    ("esc50", "data.val_folds", (3,), "no fold shared with data.val_folds=(3,) (shared: [3])"),
    ("esc50", "data.test_folds", (4,), "no fold shared with data.test_folds=(4,) (shared: [4])"),
    ("esc50", "data.train_folds", (), "at least one fold"),
    ("esc50", "data.test_folds", (6,), "fold numbers from 1 to 5"),
    ("esc50", "features.win_length", 512, "<= features.n_fft (400)"),
    ("esc50", "features.f_max", 9000.0, "f_min < f_max <= sample_rate/2 (8000.0)"),
    ("esc50", "augment.freq_mask_p", 1.5, "a number in [0.0, 1.0]"),
    ("esc50", "train.best_metric", "micro_f1", "one of ['accuracy', 'macro_f1'"),
    # Tiny ImageNet
    (
        "tiny_imagenet",
        "model.branch_channels",
        (64, 64, 32),
        "three positive widths summing to 192",
    ),
    ("tiny_imagenet", "model.num_modules", 0, "a positive number of Inception modules"),
    ("tiny_imagenet", "data.val_per_class", 0, "a number in [1, inf)"),
    ("tiny_imagenet", "data.format", "zip", "one of ['auto', 'folder', 'parquet']"),
    ("tiny_imagenet", "data.image_size", 4, "a side length >= 8 pixels"),
    # CUB-200-2011
    ("cub200", "model.groups", 3, "a number of groups dividing every stage width (64, 128, 256)"),
    ("cub200", "model.groups", 128, "1, 2, 4, 8, 16, 32 or 64"),
    ("cub200", "data.val_fraction", 0.0, "a number in (0.0, 1.0]"),
    ("cub200", "preprocess.std", (0.2, 0.2, 0.0), "positive values"),
    ("cub200", "preprocess.mean", (0.5, 0.5), "three per-channel numbers (RGB)"),
    ("cub200", "preprocess.std", (0.2, 0.2, "x"), "three per-channel numbers (RGB)"),
    ("cub200", "augment.hue", 0.6, "a number in [0.0, 0.5]"),
    # CelebA
    ("celeba", "model.dropout", 1.0, "a probability in [0, 1)"),
    ("celeba", "data.attributes", (), "a non-empty list of distinct CelebA attribute names"),
    ("celeba", "data.attributes", ("Male", "Male"), "a non-empty list of distinct"),
    ("celeba", "data.attributes", (1, 2), "a non-empty list of distinct CelebA attribute names"),
    ("celeba", "train.best_metric", "accuracy", "one of ['macro_f1', 'micro_f1'"),
    # lr_finder.*
    ("esc50", "lr_finder.start", 0.0, "a number in (0.0, inf)"),
    ("esc50", "lr_finder.end", 1e-7, "a learning rate above lr_finder.start (1e-06)"),
    ("esc50", "lr_finder.steps", 1, "a number in [2, inf)"),
    ("esc50", "lr_finder.smoothing", 1.0, "an EMA factor in [0, 1)"),
    ("esc50", "lr_finder.divergence_factor", 1.0, "a number in (1.0, inf)"),
    ("esc50", "lr_finder.min_steps", -1, "a number in [0, inf)"),
    ("esc50", "lr_finder.batch_size", -1, "a number in [0, inf)"),
    # grid.* and compare.*
    ("esc50", "grid.lr", (), "a non-empty list of values"),
    ("esc50", "grid.lr", (1e-3, 0.0), "positive learning rates"),
    ("esc50", "grid.weight_decay", (-1e-4,), "non-negative values"),
    ("esc50", "grid.seeds", (), "a non-empty list of values"),
    ("esc50", "grid.seeds", (-1,), "non-negative integer seeds"),
    ("esc50", "grid.epochs", 0, "a number in [1, inf)"),
    ("esc50", "grid.strategy", "pmap", "one of ['auto', 'sequential', 'vmap']"),
    ("esc50", "grid.model.kernel_size", (), "a non-empty list of values"),
    ("esc50", "compare.lr", (-1e-3,), "positive learning rates"),
    ("esc50", "compare.weight_decay", (-1.0,), "non-negative values"),
    ("esc50", "compare.epochs", -1, "a number in [0, inf)"),
]


@pytest.mark.parametrize(
    ("task", "key", "value", "expected"),
    BAD_VALUES,
    ids=[f"{t}-{k}={v!r}" for t, k, v, _ in BAD_VALUES],
)
def test_bad_value_is_rejected_naming_key_value_and_allowed(task, key, value, expected):
    config = load_config(task)
    _set(config, key, value)
    with pytest.raises(ConfigError) as raised:
        config_lib.validate(config)
    message = str(raised.value)
    assert re.search(r"\S+=.* is invalid: expected ", message), message
    assert expected in message, message
    assert message.split("=")[0] in (key, "data.train_folds", "data.val_folds"), message


def test_grid_key_that_is_not_a_model_hyperparameter():
    config = load_config("cub200")
    config.grid.model.depth = (2, 3)
    with pytest.raises(
        ConfigError,
        match=r"grid.model.depth=\(2, 3\) is invalid: expected a list "
        r"for one of the model's hyper-parameters "
        r"\['num_blocks', 'groups'\]",
    ):
        config_lib.validate(config)


@pytest.mark.parametrize(
    ("task", "key", "values", "message"),
    [
        (
            "cub200",
            "grid.model.groups",
            (2, 3),
            r"grid.model.groups lists 3, which is invalid: "
            r"model.groups=3 is invalid: expected a number of "
            r"groups dividing every stage width",
        ),
        ("cub200", "compare.model.groups", (3,), r"compare.model.groups lists 3"),
        (
            "tiny_imagenet",
            "grid.model.branch_channels",
            ((64, 64, 64), (64, 64, 32)),
            r"lists \(64, 64, 32\), which is invalid: .*summing to 192",
        ),
        ("esc50", "grid.model.channels", ((32, 64),), r"grid.model.channels lists \(32, 64\)"),
        ("celeba", "grid.model.dropout", (0.0, 1.2), r"grid.model.dropout lists 1.2, .*\[0, 1\)"),
        (
            "cub200",
            "grid.model.groups",
            (2.5,),
            r"grid.model.groups lists 2.5, which is invalid: "
            r"expected values of model.groups's type \(int\)",
        ),
    ],
)
def test_every_grid_and_compare_member_is_checked_at_start_up(task, key, values, message):
    """A bad member would otherwise fail only when its turn comes, after the others trained."""
    config = load_config(task)
    _set(config, key, values)
    with pytest.raises(ConfigError, match=message):
        config_lib.validate(config)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(
        ConfigError,
        match=r"configs/esc50.py:tiny: unknown preset 'tiny'; the "
        r"presets are \['synthetic'\]",
    ):
        load_config("esc50", "tiny")


# (task, key, non-finite value): `--config.KEY=inf` parses as a float; every float key refuses it.
NON_FINITE = [
    ("esc50", "train.lr", float("inf")),
    ("esc50", "train.weight_decay", float("nan")),
    ("esc50", "train.momentum", float("-inf")),
    ("esc50", "lr_finder.end", float("inf")),
    ("esc50", "features.amin", float("nan")),
    ("esc50", "grid.lr", (1e-3, float("inf"))),
    ("celeba", "model.dropout", float("nan")),
    ("cub200", "preprocess.mean", (0.5, float("nan"), 0.5)),
]


@pytest.mark.parametrize(
    ("task", "key", "value"), NON_FINITE, ids=[f"{t}-{k}={v!r}" for t, k, v in NON_FINITE]
)
def test_non_finite_floats_are_rejected_naming_the_key(task, key, value):
    config = load_config(task)
    _set(config, key, value)
    with pytest.raises(ConfigError) as raised:
        config_lib.validate(config)
    assert str(raised.value) == (
        f"{key}={value!r} is invalid: expected a finite number (not inf or nan)"
    )


@pytest.mark.parametrize("dropout", [1.5, -0.1])
def test_dropout_outside_zero_one_is_rejected(dropout):
    config = load_config("celeba")
    config.model.dropout = dropout
    with pytest.raises(
        ConfigError,
        match=rf"model.dropout={dropout} is invalid: expected a "
        r"probability in \[0, 1\)",
    ):
        config_lib.validate(config)


@pytest.mark.parametrize("name", ["exp", "lr=0.01,wd=1e-4", "a.b-c_d+e@2", "x" * 200])
def test_run_names_that_make_safe_folder_names_pass(name):
    config = load_config("esc50")
    config.run_name = name
    config_lib.validate(config)


@pytest.mark.parametrize(
    "name", ["a/b", "../x", ".hidden", "-x", "with space", "it's", 'g"""', "x" * 201, "é"]
)
def test_run_names_that_are_not_plain_folder_names_are_rejected(name):
    config = load_config("esc50")
    config.run_name = name
    with pytest.raises(ConfigError) as raised:
        config_lib.validate(config)
    message = str(raised.value)
    assert message.startswith(
        f"run_name={name!r} is invalid: expected at most 200 letters, "
        "digits and . _ - + = , @ (no spaces, quotes or '/')"
    ), message


def test_task_and_model_of_different_tasks_are_refused():
    """Overriding `task` (or `model.name`) does not turn one task's config into another's."""
    config = load_config("esc50")
    config.task = "celeba"
    with pytest.raises(
        ConfigError,
        match=r"model.name='esc50_cnn' is invalid: expected "
        r"'celeba_cnn', the model of task 'celeba': to run "
        r"another task, pass its config file",
    ):
        config_lib.validate(config)
    config.model.name = "celeba_cnn"  # both overridden: the celeba keys are missing
    with pytest.raises(
        ConfigError,
        match=r"the config has no key 'image_size' that task 'celeba' "
        r"needs: start from configs/celeba.py",
    ):
        config_lib.validate(config)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (
            "train.learning_rate",
            "unknown config key 'train.learning_rate' "
            "(--config.train.learning_rate); did you mean train.lr?",
        ),
        ("trian.lr", "unknown config key 'trian.lr' (--config.trian.lr); did you mean train.lr?"),
        (
            "model.chanels",
            "unknown config key 'model.chanels' (--config.model.chanels); did you "
            "mean model.channels?",
        ),
        (
            "lr",
            "unknown config key 'lr' (--config.lr); did you mean compare.lr or grid.lr or "
            "train.lr?",
        ),
        ("nothing.like.it", "unknown config key 'nothing.like.it' (--config.nothing.like.it)"),
    ],
)
def test_unknown_override_key_is_named_with_the_closest_key(key, message):
    with pytest.raises(ConfigError) as raised:
        config_lib.check_override_keys(load_config("esc50"), ["train.epochs", key])
    assert str(raised.value) == message


def test_known_override_keys_pass():
    config_lib.check_override_keys(
        load_config("esc50"),
        [
            "train.lr",
            "data.synthetic",
            "data.synthetic.seed",
            "model.channels",
            "grid.model.kernel_size",
        ],
    )


@pytest.mark.parametrize(
    ("text", "preset", "message"),
    [
        (
            None,
            None,
            r"--config {path}: {path} does not exist; expected a config file such as "
            r"configs/esc50.py",
        ),
        (
            "def get_config(:\n    pass\n",
            None,
            r"--config {path}: syntax error in {path} line 1 in "
            r"'def get_config\(:': invalid syntax; fix the file",
        ),
        (
            "import ml_collections\n",
            None,
            r"--config {path}: {path} defines no get_config\(\) "
            r"function",
        ),
        (
            "def get_config(preset=None):\n    x = 1\n    return undefined_name\n",
            None,
            r"--config {path}: running {path} line 3 raised NameError: name 'undefined_name' "
            r"is not defined; fix the file",
        ),
        (
            "def get_config():\n    return 1\n",
            "synthetic",
            r"--config {path}:synthetic: running {path} raised TypeError: get_config\(\) takes 0 "
            r"positional arguments but 1 was given",
        ),
        (
            "def get_config(preset=None):\n    pass\n",
            None,
            r"--config {path}: get_config\(\) in {path} returned NoneType, not a "
            r"ml_collections.ConfigDict \(a missing return statement\?\)",
        ),
    ],
    ids=[
        "missing",
        "syntax-error",
        "no-get_config",
        "exception-in-file",
        "preset-not-taken",
        "returns-none",
    ],
)
def test_config_file_mistakes_name_the_file_and_line(tmp_path, text, preset, message):
    path = tmp_path / "my_config.py"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match="^" + message.format(path=re.escape(str(path)))):
        config_lib.load_config_file(path, preset)


def test_a_task_name_loads_that_tasks_config_file():
    """`--config esc50:synthetic` is `--config configs/esc50.py:synthetic`, from any folder."""
    assert config_lib.config_path("esc50") == config_lib.CONFIG_DIR / "esc50.py"
    assert config_lib.CONFIG_DIR == REPO / "configs"  # the checkout's folder (editable install)
    by_name = config_lib.load_config_file("esc50", "synthetic")
    assert (
        by_name.to_dict()
        == config_lib.load_config_file(REPO / "configs/esc50.py", "synthetic").to_dict()
    )
    assert by_name.data.source == "synthetic"
    assert {"esc50", "tiny_imagenet", "cub200", "celeba"} <= set(config_lib.task_config_names())
    assert "__init__" not in config_lib.task_config_names()


def test_paths_stay_paths_even_when_they_look_like_a_task_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pathlib.Path("esc50").write_text(
        "import ml_collections\n\n\ndef get_config():\n"
        "    return ml_collections.ConfigDict({'task': 'mine'})\n"
    )
    assert config_lib.load_config_file("esc50").task == "mine"  # an existing file wins
    assert config_lib.config_path("configs/esc50.py") == pathlib.Path("configs/esc50.py")


@pytest.mark.parametrize("name", ["esc5", "__init__"])
def test_an_unknown_task_name_lists_the_task_configs(name):
    names = ", ".join(config_lib.task_config_names())
    with pytest.raises(ConfigError) as raised:
        config_lib.load_config_file(name, "synthetic")
    assert str(raised.value) == (
        f"--config {name}:synthetic: no config file for task {name!r}: the task configs are "
        f"{names} (in {config_lib.CONFIG_DIR}); a config file elsewhere is passed by its path, "
        "e.g. --config my_configs/my_task.py"
    )
    with pytest.raises(ConfigError, match=f"^no config file for task {name!r}: the task configs"):
        config_lib.load_task_config(name)


def test_a_checkout_used_without_installing_finds_its_configs_folder():
    """No `pip install` (or an install older than the jaxdl.configs mapping): only the folder."""
    site_packages = sysconfig.get_path("purelib")
    code = (
        "import jaxdl.config as c, importlib.util; "
        "print(importlib.util.find_spec('jaxdl.configs'), c.CONFIG_DIR, "
        "c.load_task_config('esc50').task)"
    )
    # -S: no .pth files, hence not the editable install's import hook; the checkout on the path.
    result = subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{site_packages}"},
    )
    assert result.stdout.split() == ["None", str(REPO / "configs"), "esc50"]
