"""--mode=import_torch: each reference project's PyTorch checkpoint, saved the way that project
saved it, imports into jaxdl with the same eval-mode logits; evaluate then scores the import like a
trained run; bad files are refused with the file, tensor or config key named."""

import csv

import jax
import numpy as np
import pytest

from jaxdl import tasks
from jaxdl.data import esc50
from jaxdl.errors import CheckpointError
from jaxdl.modes import ModeArgs, evaluate, import_torch
from tests.helpers import load_config, tiny_esc50_config

torch = pytest.importorskip("torch")
from jaxdl.interop import torch_checkpoint, torch_models  # noqa: E402
from tests.torch_reference import with_random_batch_norms  # noqa: E402


class TrainingNotes:
    """A Python object a careless training script might pickle next to the weights."""


def _reference_model(model_name: str, num_classes: int, hparams: dict, seed: int = 0):
    """The reference architecture with random weights and random BatchNorm statistics, in eval
    mode (BN γ, β, running mean and variance all away from their init values)."""
    torch.manual_seed(seed)
    return with_random_batch_norms(
        torch_models.TORCH_MODELS[model_name](num_classes=num_classes, **hparams)
    )


def _yaml_model_section(hparams: dict) -> dict:
    """config["model"] as yaml.safe_load gives it: sequences are lists."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in hparams.items()}


def _save_as_reference(task: str, model, hparams: dict, path, prefix: str = "") -> None:
    """torch.save exactly as each project's train.py (docs/reference-projects.md, checkpoint
    layouts)."""
    weights = {prefix + k: v for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    if task == "esc50":  # hannahadd: config + epoch + best_val_acc
        saved = {
            "model_state_dict": weights,
            "config": {"model": _yaml_model_section(hparams)},
            "epoch": 14,
            "best_val_acc": 0.3425,
        }
    elif task == "tiny_imagenet":  # riadh-lab-ux: + optimizer, global_step, val metrics, meta
        saved = {
            "model_state_dict": weights,
            "optimizer_state_dict": optimizer.state_dict(),
            "config": {
                "model": {
                    "type": "inception_multibranch",
                    "num_classes": 200,
                    **_yaml_model_section(hparams),
                }
            },
            "epoch": 33,
            "global_step": 103_125,
            "val_loss": 2.168,
            "val_accuracy": 0.5079,
            "meta": {"num_classes": 200, "input_shape": (3, 64, 64)},
        }
    elif task == "cub200":  # valentinedum: no config, 0-indexed epoch
        saved = {
            "epoch": 19,
            "model_state_dict": weights,
            "optimizer_state_dict": optimizer.state_dict(),
            "val_accuracy": 0.1034,
            "val_loss": 4.2716,
        }
    else:  # ahmedbta: the raw state_dict
        saved = weights
    torch.save(saved, path)


def _import(task: str, path, config_hparams: dict, input_hw: tuple[int, int]):
    """(imported Flax model, its variables, hyper-parameter sources, NHWC input shape)."""
    config = load_config(task)
    for key, value in config_hparams.items():
        config.model[key] = value
    saved = torch_checkpoint.read_torch_checkpoint(path)
    config, sources = torch_checkpoint.imported_config(config, saved)
    model = tasks.build_model(config, tasks.by_name(task).num_classes)
    shape = (2, *input_hw, 1 if task == "esc50" else 3)
    template = jax.eval_shape(model.init, jax.random.key(0), np.zeros(shape, np.float32))
    return model, torch_checkpoint.flax_variables(model, template, saved), sources, shape


# task, the two hyper-parameters (each value of each appears), key prefix, input H×W for parity
CASES = [
    ("esc50", dict(channels=(32, 64, 128), kernel_size=3), "", (64, 40)),
    ("esc50", dict(channels=(48, 96, 192), kernel_size=5), "", (64, 40)),
    ("tiny_imagenet", dict(num_modules=4, branch_channels=(64, 64, 64)), "", (32, 32)),
    ("tiny_imagenet", dict(num_modules=6, branch_channels=(48, 72, 72)), "module.", (32, 32)),
    ("cub200", dict(num_blocks=2, groups=2), "", (32, 32)),
    ("cub200", dict(num_blocks=3, groups=4), "model.", (32, 32)),
    ("celeba", dict(channels_block3=192, dropout=0.2), "module.", (32, 32)),
    ("celeba", dict(channels_block3=256, dropout=0.0), "", (32, 32)),
]


@pytest.mark.parametrize(
    ("task", "hparams", "prefix", "input_hw"),
    CASES,
    ids=[f"{c[0]}-{'-'.join(map(str, c[1].values()))}" for c in CASES],
)
def test_imported_logits_equal_pytorch(tmp_path, task, hparams, prefix, input_hw):
    model_name = load_config(task).model.name
    reference = _reference_model(model_name, tasks.by_name(task).num_classes, hparams)
    path = tmp_path / "best.ckpt"
    _save_as_reference(task, reference, hparams, path, prefix)
    embedded = task in ("esc50", "tiny_imagenet")
    # Projects that saved their config must win over the jaxdl defaults; others come from it.
    model, variables, sources, shape = _import(task, path, {} if embedded else hparams, input_hw)
    assert set(sources.values()) == {"checkpoint config" if embedded else "jaxdl config"}
    assert {k: getattr(model, k) for k in hparams} == hparams

    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    logits = np.asarray(jax.jit(model.apply)(variables, x))  # one compile beats op by op
    relative = np.abs(logits - expected).max() / np.abs(expected).max()
    print(f"{task} {hparams}: max |jax - torch| / max |torch| = {relative:.2e}")
    assert np.abs(expected).max() > 0.1  # not a degenerate all-zero comparison
    assert relative <= 1e-4


def test_reference_state_dict_keys():
    """The key layouts read in the reference repositories' src/model.py."""
    keys = lambda name, **h: list(  # noqa: E731
        torch_models.TORCH_MODELS[name](**h).state_dict()
    )
    assert keys("esc50_cnn")[:2] == ["block1.0.weight", "block1.0.bias"]
    assert keys("esc50_cnn")[-2:] == ["fc.weight", "fc.bias"]
    tiny = keys("tiny_imagenet_inception", num_modules=6)
    assert tiny[0] == "stem.0.weight" and tiny[-1] == "classifier.bias"
    modules = sorted({int(k.split(".")[1]) for k in tiny if k.startswith("features.")})
    assert modules == [0, 1, 3, 4, 6, 7]  # pools at indices 2 and 5
    assert "features.0.branch3.1.weight" in tiny
    assert keys("cub200_grouped", num_blocks=2)[-2:] == ["43.weight", "43.bias"]
    assert keys("cub200_grouped", num_blocks=3)[-2:] == ["61.weight", "61.bias"]
    assert keys("celeba_cnn")[-2:] == ["head.1.weight", "head.1.bias"]


@pytest.fixture(scope="module")
def esc50_reference():
    hparams = dict(channels=(32, 64, 128), kernel_size=3)
    return _reference_model("esc50_cnn", 50, hparams), hparams


def _esc50_checkpoint(path, esc50_reference, edit=lambda weights: None, config=None):
    model, hparams = esc50_reference
    weights = dict(model.state_dict())
    edit(weights)
    torch.save(
        {"model_state_dict": weights, "config": config or {"model": _yaml_model_section(hparams)}},
        path,
    )
    return path


def _import_esc50(path, **config_hparams):
    return _import("esc50", path, config_hparams, (64, 40))


def test_missing_tensor_is_named(tmp_path, esc50_reference):
    path = _esc50_checkpoint(
        tmp_path / "best.ckpt", esc50_reference, lambda w: w.pop("block2.1.running_var")
    )
    with pytest.raises(
        CheckpointError,
        match=r"best.ckpt does not match .*missing tensor\(s\): "
        r"block2.1.running_var",
    ):
        _import_esc50(path)


def test_extra_tensor_is_named(tmp_path, esc50_reference):
    path = _esc50_checkpoint(
        tmp_path / "best.ckpt",
        esc50_reference,
        lambda w: w.update({"attention.weight": torch.zeros(8)}),
    )
    with pytest.raises(
        CheckpointError,
        match=r"unused tensor\(s\), not part of the model: "
        r"attention.weight",
    ):
        _import_esc50(path)


def test_wrong_shape_names_the_tensor_and_both_shapes(tmp_path, esc50_reference):
    path = _esc50_checkpoint(
        tmp_path / "best.ckpt",
        esc50_reference,
        lambda w: w.update({"fc.weight": torch.zeros(50, 100)}),
    )
    with pytest.raises(
        CheckpointError,
        match=r"fc.weight has shape \(50, 100\), expected "
        r"\(50, 128\)",
    ):
        _import_esc50(path)


def test_config_disagreeing_with_the_tensors_names_the_key(tmp_path):
    hparams = dict(num_blocks=3, groups=4)
    path = tmp_path / "best.ckpt"
    _save_as_reference("cub200", _reference_model("cub200_grouped", 200, hparams), hparams, path)
    with pytest.raises(
        CheckpointError,
        match=r"model.num_blocks=2 \(from the jaxdl config\) .* "
        r"num_blocks=3; pass --config.model.num_blocks=3",
    ):
        _import("cub200", path, {"num_blocks": 2, "groups": 4}, (32, 32))
    with pytest.raises(
        CheckpointError,
        match=r"model.groups=2 .*\(6.weight\) are those of "
        r"groups=4; pass --config.model.groups=4",
    ):
        _import("cub200", path, {"num_blocks": 3, "groups": 2}, (32, 32))


def test_esc50_kernel_the_reference_pads_otherwise_is_refused(tmp_path):
    """k = 7 with the reference's padding 2 is not 'same': importing it would change the logits."""
    hparams = dict(channels=(8, 16, 32), kernel_size=7)
    path = tmp_path / "best.ckpt"
    _save_as_reference("esc50", _reference_model("esc50_cnn", 50, hparams), hparams, path)
    with pytest.raises(
        CheckpointError,
        match=r"best.ckpt has model.kernel_size=7: the reference "
        r"project pads 1 for kernel 3 and 2 for any other",
    ):
        _import_esc50(path, **hparams)


def test_saved_config_contradicting_its_weights_is_refused(tmp_path, esc50_reference):
    path = _esc50_checkpoint(
        tmp_path / "best.ckpt",
        esc50_reference,
        config={"model": {"channels": [32, 64, 128], "kernel_size": 5}},
    )
    with pytest.raises(
        CheckpointError,
        match=r"model.kernel_size=5 \(from the checkpoint config\)"
        r".*kernel_size=3; the checkpoint's own config",
    ):
        _import_esc50(path)


def test_non_checkpoint_files_are_named(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("epoch 14: val acc 0.3425\n")
    with pytest.raises(CheckpointError, match=r"notes.txt is not a PyTorch checkpoint"):
        torch_checkpoint.read_torch_checkpoint(notes)
    with pytest.raises(CheckpointError, match=r"absent.ckpt does not exist"):
        torch_checkpoint.read_torch_checkpoint(tmp_path / "absent.ckpt")
    no_weights = tmp_path / "no_weights.ckpt"
    torch.save({"epoch": 3, "val_loss": 1.0}, no_weights)
    with pytest.raises(CheckpointError, match=r"no_weights.ckpt holds no model weights"):
        torch_checkpoint.read_torch_checkpoint(no_weights)


def test_checkpoint_needing_unsafe_unpickling_is_refused(tmp_path):
    path = tmp_path / "pickled.ckpt"
    torch.save(
        {"model_state_dict": {"fc.weight": torch.zeros(2, 2)}, "notes": TrainingNotes()}, path
    )
    with pytest.raises(
        CheckpointError,
        match=r"pickled.ckpt needs unsafe unpickling: .*"
        r"test_import_torch.TrainingNotes",
    ):
        torch_checkpoint.read_torch_checkpoint(path)


def test_reading_keeps_what_the_projects_saved(tmp_path):
    hparams = dict(num_modules=4, branch_channels=(64, 64, 64))
    path = tmp_path / "best.ckpt"
    model = _reference_model("tiny_imagenet_inception", 200, hparams)
    _save_as_reference("tiny_imagenet", model, hparams, path, prefix="module.")
    saved = torch_checkpoint.read_torch_checkpoint(path)
    assert saved.epoch == 33 and saved.metrics == {"accuracy": 0.5079, "loss": 2.168}
    assert saved.config["model"]["num_modules"] == 4 and saved.class_names is None
    expected = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert set(saved.tensors) == expected  # prefix stripped, step counters dropped
    assert all(t.dtype == np.float32 for t in saved.tensors.values())


def test_class_names_fall_back_to_the_declared_attributes(tmp_path):
    config = load_config("celeba")  # no data.dir, and CelebA has no public archive to fetch
    config.data.cache_dir = str(tmp_path)
    path = tmp_path / "best.ckpt"
    hparams = dict(channels_block3=256, dropout=0.0)
    _save_as_reference("celeba", _reference_model("celeba_cnn", 5, hparams), hparams, path)
    names, source = import_torch.class_names(config, torch_checkpoint.read_torch_checkpoint(path))
    assert names == ("Smiling", "Wearing_Hat", "Male", "Young", "Eyeglasses")
    assert source == "config's data.attributes"


@pytest.fixture(scope="module")
def synthetic_esc50(tmp_path_factory):
    """Tiny synthetic ESC-50 (10 classes, 1 s clips), its feature cache shared by the tests."""
    return tiny_esc50_config(tmp_path_factory.mktemp("esc50"))


def test_label_map_disagreeing_with_the_data_is_refused(tmp_path, synthetic_esc50):
    names = esc50.class_names(esc50.read_metadata(esc50.resolve_data_dir(synthetic_esc50)))
    path = tmp_path / "best.ckpt"
    torch.save(
        {
            "model_state_dict": {"fc.weight": torch.zeros(10, 64)},
            "meta": {"label_map": {name: i for i, name in enumerate(reversed(names))}},
        },
        path,
    )
    with pytest.raises(
        CheckpointError,
        match=r"best.ckpt: its label map orders the classes "
        r".*predictions would be mislabelled",
    ):
        import_torch.class_names(synthetic_esc50, torch_checkpoint.read_torch_checkpoint(path))


def test_import_then_evaluate_predicts_like_pytorch(tmp_path, synthetic_esc50):
    """The whole path on synthetic ESC-50: import_torch writes checkpoints/<run>, evaluate scores it
    through jaxdl's own features, and every prediction equals the PyTorch model's on them."""
    config = synthetic_esc50  # 10 classes, channels (16, 32, 64), kernel 3
    hparams = dict(channels=(16, 32, 64), kernel_size=3)
    reference = _reference_model("esc50_cnn", 10, hparams, seed=3)
    path = tmp_path / "artifacts" / "best.ckpt"
    path.parent.mkdir()
    torch.save(
        {
            "model_state_dict": reference.state_dict(),
            "config": {"model": _yaml_model_section(hparams)},
            "epoch": 7,
            "best_val_acc": 0.25,
        },
        path,
    )

    imported = import_torch.run(config, tmp_path, ModeArgs(torch_checkpoint=str(path)))
    assert imported["mode"] == "import_torch" and imported["epoch"] == 7
    assert imported["tensors"] == 20  # 3 × (conv weight, bias, 4 BN tensors) + fc weight, bias
    assert imported["parameters"] == sum(p.numel() for p in reference.parameters())
    assert imported["class_names_from"] == "dataset" and imported["classes"] == 10
    assert imported["val/accuracy"] == 0.25
    assert (tmp_path / "checkpoints" / imported["run"]).is_dir()

    result = evaluate.run(config, tmp_path, ModeArgs(checkpoint=imported["checkpoint"]))
    split = esc50.load_split(config, "test")
    records = [split.source[i] for i in range(len(split.source))]
    features = np.stack([r["features"] for r in records])[:, None]  # (N, 1, 64, T)
    with torch.no_grad():
        probabilities = torch.softmax(reference(torch.from_numpy(features)), -1).numpy()
    predicted = probabilities.argmax(-1)
    assert result["epoch"] == 7 and result["examples"] == len(records) == 40
    accuracy = np.mean(predicted == [r["label"] for r in records])
    assert result["test/accuracy"] == pytest.approx(accuracy)
    rows = list(csv.DictReader(open(f"{result['outputs']}/predictions.csv")))
    assert [row["predicted_label"] for row in rows] == [split.class_names[p] for p in predicted]
    np.testing.assert_allclose(
        [float(row["probability"]) for row in rows], probabilities.max(-1), atol=2e-6
    )


# (task whose reference model saved the checkpoint, task of the config it is imported under)
OTHER_TASK = [
    ("celeba", "esc50"),
    ("esc50", "celeba"),
    ("cub200", "tiny_imagenet"),
    ("tiny_imagenet", "cub200"),
]


@pytest.mark.parametrize(
    ("saved_task", "config_task"), OTHER_TASK, ids=[f"{s}-under-{c}" for s, c in OTHER_TASK]
)
def test_another_tasks_checkpoint_is_named_first(tmp_path, saved_task, config_task):
    """Not "pass --config.model.channels=…" (true of the tensors, useless for another task's
    model): the first message names the task the checkpoint belongs to and its config file."""
    hparams = {
        "celeba": dict(channels_block3=192),
        "esc50": dict(kernel_size=3),
        "cub200": dict(num_blocks=3),
        "tiny_imagenet": dict(num_modules=4),
    }[saved_task]
    model_name = load_config(saved_task).model.name
    path = tmp_path / "best.ckpt"
    _save_as_reference(saved_task, _reference_model(model_name, 5, hparams), hparams, path)
    own = load_config(config_task).model.name
    with pytest.raises(CheckpointError) as raised:
        torch_checkpoint.imported_config(
            load_config(config_task), torch_checkpoint.read_torch_checkpoint(path)
        )
    assert str(raised.value).startswith(
        f"{path} holds a checkpoint of the {saved_task} task's model {model_name} (tensors "
    )
    assert str(raised.value).endswith(
        f"not of {own}, the model of this config's task {config_task!r}: import it with "
        f"--config {saved_task}"
    )
