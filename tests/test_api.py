"""The Python API as a notebook uses it: `import jaxdl`, `jaxdl.load_config`, `jaxdl.run`.

The happy path runs as a notebook does, in a fresh interpreter (no pytest set-up, absl flags never
parsed); the refusals run here, where each fails before any compute.
"""

import json
import subprocess
import sys
import textwrap

import ml_collections
import pytest

import jaxdl
from jaxdl import config as config_lib
from jaxdl.errors import ConfigError
from jaxdl.modes import ModeArgs, run_mode
from tests.helpers import REPO, SESSION_CACHE, tensorboard_hparams

NOTEBOOK = textwrap.dedent(
    """
    import json, sys
    import jaxdl

    workdir, cache = sys.argv[1:]
    config = jaxdl.load_config(
        "esc50",
        "synthetic",
        data={"cache_dir": cache, "synthetic": {"num_classes": 10, "clips_per_class_per_fold": 4}},
        model={"channels": [8, 16, 16], "kernel_size": 3},
        train={"epochs": 2, "batch_size": 16, "lr": 0.01, "weight_decay": 1e-4,
               "evaluate_test": False},
        bench={"warmup": 1, "steps": 2},
    )
    bench = jaxdl.run("bench", config)
    train = jaxdl.run("train", config, workdir=workdir)
    print(json.dumps({"bench": bench, "train": train}, allow_nan=False))
    """
)


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    """The two result dicts of a notebook that benches and trains a tiny ESC-50 model."""
    workdir = tmp_path_factory.mktemp("notebook")
    done = subprocess.run(
        [sys.executable, "-c", NOTEBOOK, str(workdir), str(SESSION_CACHE)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir, json.loads(done.stdout.splitlines()[-1])


def test_bench_and_train_return_their_json_result(notebook):
    workdir, results = notebook
    assert results["bench"]["batch_size"] == 16 and results["bench"]["params"] > 0
    assert results["bench"]["train_step_ms_median"] > 0
    train = results["train"]
    assert train["mode"] == "train" and train["best_epoch"] in (1, 2)
    assert (workdir / "logs" / train["run"] / "metrics.jsonl").is_file()
    assert train["checkpoint"] == str(workdir / "checkpoints" / train["run"])


def test_a_train_run_shows_in_the_hparams_tab_as_grid_members_do(notebook):
    workdir, results = notebook
    log_dir = workdir / "logs" / results["train"]["run"]
    shown = tensorboard_hparams(log_dir)
    assert shown["hparams"] == {
        "lr": 0.01,
        "weight_decay": 1e-4,
        "seed": 42.0,
        "channels": "8-16-16",
        "kernel_size": 3.0,
        "optimizer": "adamw",
        "schedule": "none",
        "batch_size": 16.0,
    }
    records = [json.loads(line) for line in (log_dir / "metrics.jsonl").read_text().splitlines()]
    best = max(records, key=lambda r: r["val/accuracy"])
    assert shown["metrics"] == {
        "hparam/best_val_accuracy": pytest.approx(best["val/accuracy"]),
        "hparam/best_val_loss": pytest.approx(best["val/loss"]),
        "hparam/best_epoch": float(results["train"]["best_epoch"]),
    }


def test_import_jaxdl_loads_neither_jax_nor_the_config_code():
    code = (
        "import sys, jaxdl; print(sorted({'jax', 'ml_collections', 'jaxdl.api'} & {*sys.modules}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.stdout.strip() == "[]", done.stderr


def test_overrides_reach_the_config_and_it_is_locked():
    config = jaxdl.load_config(
        "esc50:synthetic", train={"lr": 1, "epochs": 3}, model={"channels": [8, 16, 16]}, seed=7
    )
    assert (config.train.lr, config.train.epochs, config.seed) == (1.0, 3, 7)
    assert config.model.channels == (8, 16, 16) and config.data.source == "synthetic"
    with pytest.raises(AttributeError, match="dropout"):
        config.model.dropout = 0.5


def test_a_config_file_path_loads_like_a_task_name():
    assert jaxdl.load_config(config_lib.CONFIG_DIR / "celeba.py") == jaxdl.load_config("celeba")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"train": {"learning_rate": 0.01}},
            "unknown config key 'train.learning_rate' (--config.train.learning_rate); "
            "did you mean train.lr?",
        ),
        ({"model": {"dropout": 1.5}}, "model.dropout=1.5 is invalid: expected a probability"),
        (
            {"train": {"epochs": "three"}},
            "train.epochs='three' is invalid: expected int, the type of its default 5",
        ),
        ({"train": 0.01}, "train=0.01 is invalid: train is a section; expected a dict of the keys"),
    ],
)
def test_bad_overrides_are_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as raised:
        jaxdl.load_config("celeba", "synthetic", **overrides)
    assert message in str(raised.value)


def _changed(task: str, **model) -> ml_collections.ConfigDict:
    """A task config changed in Python after loading, unlocked (keys can be added)."""
    config = config_lib.load_task_config(task, "synthetic")
    for key, value in model.items():
        config.model[key] = value
    return config


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (_changed("celeba", dropout=1.5), "model.dropout=1.5 is invalid"),
        # ESC-50's model has no dropout: the key once went unnoticed and the bench ran.
        (_changed("esc50", dropout=1.5), "unknown config key 'model.dropout'"),
    ],
)
def test_run_validates_a_config_changed_after_loading(tmp_path, config, message):
    for call in (
        lambda: jaxdl.run("bench", config, workdir=tmp_path),
        lambda: run_mode("bench", config, tmp_path, ModeArgs()),
    ):
        with pytest.raises(ConfigError, match=message):
            call()
    assert list(tmp_path.iterdir()) == []


def test_run_refuses_an_unknown_mode_argument(tmp_path):
    config = jaxdl.load_config("esc50", "synthetic")
    with pytest.raises(ConfigError, match=r"unknown argument\(s\) \['checkpoints'\] of jaxdl.run"):
        jaxdl.run("evaluate", config, workdir=tmp_path, checkpoints="checkpoints/x")
