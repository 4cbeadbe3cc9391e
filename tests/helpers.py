"""Shared test helpers: task configs with a test-local cache, small models, random batches."""

import importlib.util
import pathlib

import ml_collections

REPO = pathlib.Path(__file__).resolve().parents[1]


def load_config(task: str, preset: str | None = None) -> ml_collections.ConfigDict:
    """`configs/<task>.py:get_config(preset)`, loaded from the file as config_flags does."""
    spec = importlib.util.spec_from_file_location(f"config_{task}", REPO / "configs" / f"{task}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(preset)


def tiny_esc50_config(tmp_path: pathlib.Path, **train) -> ml_collections.ConfigDict:
    """Synthetic ESC-50 with 10 classes of 1 s clips and a narrow model: fast on 2 cores."""
    config = load_config("esc50", "synthetic")
    config.data.cache_dir = str(tmp_path / "cache")
    config.data.synthetic.num_classes = 10
    config.data.synthetic.clips_per_class_per_fold = 4
    config.model.channels = (16, 32, 64)
    config.model.kernel_size = 3
    config.train.batch_size = 16
    config.train.epochs = 2
    config.train.lr = 1e-2
    config.train.log_every_steps = 2
    for key, value in train.items():
        config.train[key] = value
    return config
