"""What a task is: one `Task` value per task holds everything the rest of jaxdl asks about it.

Generic code (the pipeline, the assembler, the modes, analyze, report) never tests
`config.task`; it asks the task from `jaxdl.tasks.get(config)`. Functions are module-level (not
lambdas) so grain worker processes can pickle them.
"""

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np
from flax import linen as nn

from jaxdl import models
from jaxdl.checks import check, check_choice
from jaxdl.data import device_inputs
from jaxdl.data.device_inputs import DeviceInputs, DeviceShare
from jaxdl.data.locate import DatasetSource, dataset_dir
from jaxdl.data.split import Split
from jaxdl.training.metrics import METRIC_NAMES
from jaxdl.utils.plots import Panel

OBJECTIVE_KINDS = ("multiclass", "multilabel")


@dataclasses.dataclass(frozen=True)
class DatasetCard:
    """What analyze's dataset card says about the real dataset (D1–D2)."""

    name: str
    homepage: str
    raw_format: str  # the official layout, as documented (the census measures the files)


@dataclasses.dataclass(frozen=True)
class RawGroup:
    """Files of one part of the layout (e.g. the official train split), as the annotations list
    them: what analyze's census (D5) inspects."""

    name: str
    files: Sequence[str]  # names for messages (relative paths as listed)
    read: Callable[[int], Path | bytes]  # the i-th file's path, or its encoded bytes (parquet)


@dataclasses.dataclass(frozen=True)
class RawFiles:
    kind: str  # "audio" | "image": how each file is inspected
    root: Path  # the dataset folder
    groups: list[RawGroup]
    unlisted: list[str]  # files present in the layout but in no annotation


@dataclasses.dataclass(frozen=True)
class Task:
    name: str  # config.task
    card: DatasetCard
    source: DatasetSource  # where the dataset folder comes from, its synthetic generator included
    objective_kind: str  # one of OBJECTIVE_KINDS
    num_classes: int  # of the real dataset (bench builds the model without reading data)
    model_name: str  # config.model.name of the task's config file
    model: type[nn.Module]  # names and checks its own hyper-parameters (jaxdl.models)
    load_split: Callable[[ml_collections.ConfigDict, str], Split]
    # record, config -> float32 model input of shape input_shape(config)
    model_input: Callable[[dict, ml_collections.ConfigDict], np.ndarray]
    # record, rng, config.augment -> record (train split only)
    augment: Callable[[dict, np.random.Generator, ml_collections.ConfigDict], dict]
    input_shape: Callable[[ml_collections.ConfigDict], tuple[int, ...]]  # of one example
    # Checks the task's own keys (data.*, features.* or preprocess.*, augment.*): ConfigError.
    validate_data: Callable[[ml_collections.ConfigDict], None]
    # What analyze shows about the task:
    split_protocol: Callable[[ml_collections.ConfigDict], str]  # how train/val/test are made (D3)
    raw_files: Callable[[ml_collections.ConfigDict], RawFiles]  # the census's files (D5)
    # config, input_shape -> (preprocessing steps, augmentation steps), each {"op", "params"[, "p"]}
    pipeline_steps: Callable[
        [ml_collections.ConfigDict, tuple[int, ...]], tuple[list[dict], list[dict]]
    ]
    # config, train source -> {"mean", "std", "examples", "config_mean", "config_std",
    # "max_abs_diff"}
    mean_std: Callable[[ml_collections.ConfigDict, Any], dict]
    # config, record, augmented record, model input, caption -> (figure row, extra facts) (D9–D10)
    example_panels: Callable[
        [ml_collections.ConfigDict, dict, dict, np.ndarray, str], tuple[list[Panel], dict]
    ]
    # config -> the input work the jitted step takes from the host on the device path
    # (`data.augment_on`, jaxdl/data/device_inputs.py); None: the host does all of it everywhere.
    device_share: Callable[[ml_collections.ConfigDict], DeviceShare] | None = None

    @property
    def hyperparameters(self) -> tuple[str, str]:
        """The model's two `config.model` keys that grids and run names vary."""
        return self.model.HYPERPARAMETERS

    @property
    def metric_names(self) -> tuple[str, ...]:
        return METRIC_NAMES[self.objective_kind]

    def data_dir(self, config: ml_collections.ConfigDict) -> Path:
        """The dataset folder in its official layout: generated, `data.dir`, or downloaded."""
        return dataset_dir(config, self.source)

    def build_model(self, config: ml_collections.ConfigDict, num_classes: int) -> nn.Module:
        return models.build(self.model, config.model, num_classes)

    def validate(self, config: ml_collections.ConfigDict) -> None:
        """The task's keys, its model's hyper-parameters and its metric names."""
        check(
            config.model.name == self.model_name,
            "model.name",
            config.model.name,
            f"{self.model_name!r}, the model of task {self.name!r}: to run another task, pass "
            "its config file (--config configs/<task>.py) instead of overriding task or "
            "model.name",
        )
        self.validate_data(config)
        models.check(self.model, config)
        check_choice(config, "train.best_metric", self.metric_names)
        check_choice(config, "data.augment_on", device_inputs.AUGMENT_ON)

    def _device_share(self, config: ml_collections.ConfigDict) -> DeviceShare | None:
        """The task's device share on the device path, None on the host path."""
        if self.device_share is None or not device_inputs.on_device(config):
            return None
        return self.device_share(config)

    def host_view(
        self, config: ml_collections.ConfigDict
    ) -> tuple["Task", ml_collections.ConfigDict]:
        """The task and config the host pipeline runs: these on the host path; on the device path
        a task whose `model_input` is what the step finishes (e.g. uint8 pixels) and a config copy
        whose `augment.*` no longer draw what the step draws."""
        share = self._device_share(config)
        if share is None:
            return self, config
        host = config.copy_and_resolve_references()
        host.augment.update(dict(share.host_augment))
        return dataclasses.replace(self, model_input=share.host_input), host

    def step_inputs(self, config: ml_collections.ConfigDict) -> DeviceInputs | None:
        """What the jitted steps do to a batch's x before the model on the device path (None: x
        is the model input). Augmentation only where the training batches are augmented:
        `augment.enabled` and no `train.overfit_n` subset."""
        share = self._device_share(config)
        if share is None:
            return None
        inputs = share.inputs
        if not config.augment.enabled or config.train.overfit_n:
            inputs = dataclasses.replace(inputs, augment=None)
        return None if inputs == DeviceInputs() else inputs
