"""Run names as the user reads them in logs/: each key apart from its value, and no learning rate
or weight decay in the name of a mode that does not train with it."""

import re

from jaxdl.training import grid
from jaxdl.utils import runs
from tests.helpers import load_config

_STAMP = r"\d{8}-\d{6}"


def _esc50():
    config = load_config("esc50", "synthetic")
    config.model.update(channels=(32, 64, 128), kernel_size=5)
    config.train.update(lr=0.02, weight_decay=1e-5)
    return config


def test_each_key_is_apart_from_its_value():
    config = load_config("celeba", "synthetic")
    config.model.update(channels_block3=256, dropout=0.2)
    config.train.update(lr=5e-3, weight_decay=1e-4)
    assert re.fullmatch(
        rf"celeba_train_channels_block3-256_dropout-0\.2_lr-0\.005_wd-0\.0001_{_STAMP}",
        runs.run_name(config, "train"),
    )
    assert re.fullmatch(
        rf"esc50_train_channels-32-64-128_kernel_size-5_lr-0\.02_wd-1e-05_{_STAMP}",
        runs.run_name(_esc50(), "train"),
    )


def test_modes_name_only_what_they_train_with():
    config = _esc50()
    config.grid.model = {"kernel_size": (3, 5)}
    names = {mode: runs.run_name(config, mode) for mode in ("analyze", "lr_finder", "grid_search")}
    assert re.fullmatch(
        rf"esc50_analyze_channels-32-64-128_kernel_size-5_{_STAMP}", names["analyze"]
    )
    assert re.fullmatch(
        rf"esc50_lr_finder_channels-32-64-128_kernel_size-5_wd-1e-05_{_STAMP}", names["lr_finder"]
    )
    # The grid varies lr, weight decay and kernel_size; it trains every member with these channels.
    assert re.fullmatch(rf"esc50_grid_search_channels-32-64-128_{_STAMP}", names["grid_search"])
    config.grid.model = {"channels": ((8, 16, 16),), "kernel_size": (3, 5)}
    assert re.fullmatch(rf"esc50_grid_search_{_STAMP}", runs.run_name(config, "grid_search"))


def test_a_grid_member_names_everything_it_was_trained_with():
    config = _esc50()
    config.seed = 7
    assert grid.member_name(config) == (
        "esc50_channels-32-64-128_kernel_size-5_lr-0.02_wd-1e-05_seed-7"
    )


def test_a_run_name_set_by_the_user_is_kept():
    config = _esc50()
    config.run_name = "my run"
    assert runs.run_name(config, "analyze") == "my run"


def test_a_checkpoint_written_before_a_key_existed_ran_with_its_old_value():
    """A checkpoint from before model.dtype / runtime.matmul_precision / data.augment_on resumes
    under the values it ran with, and only those; workers never block a resume."""
    current = _esc50().to_dict()
    saved = _esc50().to_dict()
    for section, key in (
        ("model", "dtype"),
        ("runtime", "matmul_precision"),
        ("data", "augment_on"),
    ):
        del saved[section][key]
    saved["data"]["workers"] = 0
    assert runs.config_differences(saved, current) == []
    current["model"]["dtype"] = "bfloat16"
    current["runtime"]["matmul_precision"] = "highest"
    assert runs.config_differences(saved, current) == [
        "model.dtype: checkpoint float32, this run bfloat16",
        "runtime.matmul_precision: checkpoint default, this run highest",
    ]
