"""A fifth task, added from this file alone: one task module (the first half of this file) and one
config file (`SHAPES_CONFIG`), then every mode of the course method runs on it unchanged.

The task, "shapes", classifies 28×28 grey images of three patterns (horizontal stripes, vertical
stripes, a centred disc) stored as PNG files in `<split>/<class>/<n>.png` with a `classes.txt`.
docs/adding-a-task.md walks through the same steps.
"""

import json
import pathlib

import jax
import ml_collections
import numpy as np
import pytest
from flax import linen as nn
from PIL import Image

from jaxdl import config as config_lib
from jaxdl import tasks
from jaxdl.checks import check
from jaxdl.data import synthetic
from jaxdl.data.image_dataset import ImageFiles, load_image_split
from jaxdl.data.locate import DatasetSource
from jaxdl.data.split import Split
from jaxdl.errors import ConfigError
from jaxdl.modes import ModeArgs, run_mode
from jaxdl.tasks import images
from jaxdl.tasks.spec import DatasetCard, RawFiles, Task

# ---------------------------------------------------------------------------------------------
# The task module (in jaxdl it would be jaxdl/tasks/shapes.py).

CLASSES = ("horizontal", "vertical", "disc")
SPLITS = ("train", "val", "test")
SIDE = 28


def _pattern(label: int, rng: np.random.Generator) -> np.ndarray:
    """A (28, 28) uint8 grey image of class `label`, with a random phase / radius and noise."""
    rows, cols = np.mgrid[:SIDE, :SIDE]
    if label == 2:
        shape = np.hypot(rows - SIDE / 2, cols - SIDE / 2) < rng.uniform(6, 10)
    else:
        along = rows if label == 0 else cols
        shape = (along + rng.integers(0, 6)) % 6 < 3
    noise = rng.normal(0, 20, (SIDE, SIDE))
    return np.clip(np.where(shape, 200, 50) + noise, 0, 255).astype(np.uint8)


def make_synthetic_shapes(
    root: pathlib.Path, *, per_class: int = 12, seed: int = 0
) -> pathlib.Path:
    """The dataset in its on-disk layout, generated once per settings (content-keyed folder)."""
    folder = synthetic.generated_folder(root, "shapes", per_class=per_class, seed=seed)

    def write(building: pathlib.Path) -> None:
        rng = np.random.default_rng(seed)
        (building / "classes.txt").write_text("\n".join(CLASSES) + "\n")
        for split in SPLITS:
            for label, name in enumerate(CLASSES):
                (building / split / name).mkdir(parents=True)
                for n in range(per_class):
                    Image.fromarray(_pattern(label, rng), mode="L").save(
                        building / split / name / f"{n}.png"
                    )

    synthetic.generate_once(folder, "shapes", write)
    return folder


SOURCE = DatasetSource(
    title="Shapes",
    marker="classes.txt",
    archive_folder="shapes",
    make_synthetic=make_synthetic_shapes,
    manual_hint="it exists only as generated data.",
)


def _split_files(root: pathlib.Path, split: str) -> list[str]:
    return sorted(p.relative_to(root / split).as_posix() for p in (root / split).glob("*/*.png"))


def load_split(config: ml_collections.ConfigDict, split: str) -> Split:
    """Records {"image": uint8 (28, 28, 3), "label": int, "filename"}: the generic image cache."""
    root = SHAPES.data_dir(config)
    classes = tuple((root / "classes.txt").read_text().split())
    files = _split_files(root, split)
    labels = np.array([classes.index(name.split("/")[0]) for name in files])
    return load_image_split(
        config,
        task="shapes",
        split=split,
        images=ImageFiles(root / split, files),
        filenames=files,
        labels=labels,
        class_names=classes,
        selected_by=f"{root / split}",
    )


def split_protocol(config: ml_collections.ConfigDict) -> str:
    del config
    return "one folder per split, as generated"


def raw_files(config: ml_collections.ConfigDict) -> RawFiles:
    root = SHAPES.data_dir(config)
    groups = [
        images.images_group(split, ImageFiles(root / split, files), files)
        for split in SPLITS
        for files in [_split_files(root, split)]
    ]
    return RawFiles("image", root, groups, [])


class ShapesCNN(nn.Module):
    """(B, 28, 28, 3) -> (B, num_classes): `depth` Conv3×3(width) → ReLU layers, GAP, Dense."""

    num_classes: int
    width: int = 8
    depth: int = 1
    init_scheme: str = "flax"

    HYPERPARAMETERS = ("width", "depth")

    @staticmethod
    def check_hyperparameters(model: ml_collections.ConfigDict) -> None:
        check(
            isinstance(model.width, int) and model.width >= 1,
            "model.width",
            model.width,
            "a positive number of channels",
        )
        check(model.depth in (1, 2, 3), "model.depth", model.depth, "1, 2 or 3 conv layers")

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        for _ in range(self.depth):
            x = nn.relu(nn.Conv(self.width, (3, 3))(x))
        return nn.Dense(self.num_classes)(x.mean(axis=(1, 2)))


SHAPES = images.image_task(  # the image tasks' adapters and analyze views, plus these fields
    name="shapes",
    card=DatasetCard(
        "Shapes (generated stripes and discs)",
        "(generated by the test suite)",
        "28×28 grey PNG in <split>/<class>/<n>.png; classes.txt",
    ),
    source=SOURCE,
    objective_kind="multiclass",
    num_classes=len(CLASSES),
    model_name="shapes_cnn",
    model=ShapesCNN,
    load_split=load_split,
    validate_data=images.validate,
    split_protocol=split_protocol,
    raw_files=raw_files,
)

# ---------------------------------------------------------------------------------------------
# The config file (in jaxdl it would be configs/shapes.py).

SHAPES_CONFIG = """
import ml_collections

from jaxdl import config as common


def get_config(preset=None):
    config = common.base_config(task="shapes")
    config.data.image_size = 28
    config.data.synthetic = ml_collections.ConfigDict(dict(per_class=12, seed=0))
    config.preprocess = ml_collections.ConfigDict(
        dict(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)))
    config.augment = ml_collections.ConfigDict(dict(
        enabled=True, flip_p=0.5, crop_padding=0, brightness=0.0, contrast=0.0, saturation=0.0,
        hue=0.0, rotation_degrees=0.0))
    config.model = ml_collections.ConfigDict(dict(name="shapes_cnn", width=8, depth=1, init="flax"))
    config.train.batch_size = 12
    config.train.epochs = 8
    config.train.lr = 0.03
    config.train.evaluate_test = True
    config.lr_finder.steps = 12
    config.lr_finder.min_steps = 3
    config.grid.lr = (0.01, 0.03)
    config.grid.epochs = 1
    return common.apply_preset(config, preset)
"""

# ---------------------------------------------------------------------------------------------
# The test: register the task, load its config file, run every mode.


@pytest.fixture
def shapes_config(tmp_path: pathlib.Path) -> ml_collections.ConfigDict:
    tasks.register(SHAPES)
    path = tmp_path / "shapes.py"
    path.write_text(SHAPES_CONFIG)
    config = config_lib.load_config_file(path, "synthetic")
    config.data.cache_dir = str(tmp_path / "cache")
    return config


def _run(mode: str, config: ml_collections.ConfigDict, workdir: pathlib.Path, **args) -> dict:
    result = run_mode(mode, config, workdir, ModeArgs(**args))
    json.dumps(result)  # every mode's result is its JSON line
    return result


def test_a_task_registered_from_one_module_runs_every_mode(shapes_config, tmp_path):
    workdir = tmp_path / "work"
    analysis = _run("analyze", shapes_config, workdir)
    summary = json.loads((pathlib.Path(analysis["out_dir"]) / "summary.json").read_text())
    assert summary["card"]["dataset"] == "Shapes (generated stripes and discs)"
    assert summary["card"]["class_names"] == list(CLASSES)
    assert summary["card"]["input_shape"] == [28, 28, 3]
    assert summary["census"]["all"]["files"] == 3 * 3 * 12  # 3 splits × 3 classes × 12 images

    sweep = _run("lr_finder", shapes_config, workdir)
    assert shapes_config.lr_finder.start <= sweep["suggested_lr"] <= shapes_config.lr_finder.end

    grid = _run("grid_search", shapes_config, workdir)
    assert grid["members"] == 2
    rows = (pathlib.Path(grid["summary"]).parent / "summary.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 and "width" in rows[0] and "depth" in rows[0]

    trained = _run("train", shapes_config, workdir)
    assert trained["test/accuracy"] > 0.6  # three easy patterns; chance is 1/3

    scored = _run("evaluate", shapes_config, workdir, checkpoint=trained["checkpoint"])
    assert scored["examples"] == 36
    assert scored["test/accuracy"] == pytest.approx(trained["test/accuracy"])
    assert scored["test/loss"] == pytest.approx(trained["test/loss"], rel=1e-5)


def test_a_registered_task_validates_its_model_by_its_own_rules(shapes_config):
    shapes_config.model.depth = 4
    with pytest.raises(ConfigError, match=r"model.depth=4 is invalid: expected 1, 2 or 3 conv"):
        config_lib.validate(shapes_config)


def test_two_tasks_cannot_share_a_name_or_a_model(shapes_config):
    del shapes_config
    with pytest.raises(ValueError, match="already registered"):
        tasks.register(Task(**{**SHAPES.__dict__, "model_name": "other"}))
    with pytest.raises(ValueError, match="shapes_cnn.*already task 'shapes'"):
        tasks.register(Task(**{**SHAPES.__dict__, "name": "shapes2"}))


def test_an_unknown_task_names_the_registered_ones(shapes_config):
    shapes_config.task = "shape"
    with pytest.raises(ConfigError, match=r"task='shape' is invalid: expected one of \[.*'shapes'"):
        config_lib.validate(shapes_config)
