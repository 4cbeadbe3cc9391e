"""A reference project's PyTorch checkpoint, read safely and mapped onto jaxdl's Flax model.

Accepted shapes (docs/reference-projects.md#checkpoint-layouts): a dict holding the weights under
`model_state_dict` (ESC-50 adds `config`, `epoch`, `best_val_acc`; Tiny ImageNet
`optimizer_state_dict`, `global_step`, `val_loss`, `val_accuracy`, `meta`; CUB-200 `epoch`,
`optimizer_state_dict`, `val_accuracy`, `val_loss`) or a bare state_dict (CelebA). Keys may carry a
`module.` (DataParallel) or `model.` prefix. Files are read with `torch.load(weights_only=True)`,
so no pickled code runs. Mapping: Conv2d OIHW → HWIO (a grouped conv's (O, I/G, kh, kw) weight is
the kernel of the grouped `layers.Conv` transposed), Linear (out, in) → (in, out), BatchNorm
weight/bias/running_mean/running_var → scale/bias and batch_stats mean/var; `num_batches_tracked`
is dropped. Every tensor must be used and every shape must match, or the import stops.

Needs torch (`pip install jaxdl[torch]`), imported only when a file is read.
"""

import dataclasses
import pickle
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np
from flax import linen as nn
from flax import traverse_util

from jaxdl import tasks
from jaxdl.errors import CheckpointError, DependencyError
from jaxdl.models.celeba_net import CelebaCNN
from jaxdl.models.cub200_net import Cub200GroupedCNN
from jaxdl.models.esc50_cnn import Esc50CNN
from jaxdl.models.tiny_imagenet_net import POOL_AFTER_MODULES, TinyImageNetInception

STATE_DICT_KEYS = ("model_state_dict", "state_dict")  # where a training dict keeps the weights
PREFIXES = ("module.", "model.")
# scalar saved next to the weights -> jaxdl validation metric
METRICS = {"best_val_acc": "accuracy", "val_accuracy": "accuracy", "val_loss": "loss"}
_LISTED = 5  # tensor names quoted per kind of problem


@dataclasses.dataclass(frozen=True)
class TorchCheckpoint:
    path: Path
    tensors: dict[str, np.ndarray]  # float32, prefixes stripped, num_batches_tracked dropped
    config: dict  # the training config saved with the weights ({} when none)
    epoch: int | None
    metrics: dict[str, float]  # jaxdl metric name -> value, as saved by the project
    class_names: tuple[str, ...] | None  # from a saved `meta["label_map"]` (name -> index)


def read_torch_checkpoint(path: str | Path) -> TorchCheckpoint:
    """Loads `path` without unpickling code; CheckpointError naming the file if it cannot."""
    path = Path(path)
    try:
        import torch
    except ImportError as err:
        raise DependencyError(
            f"reading the PyTorch checkpoint {path} needs torch, which is not "
            f"installed ({err}): pip install 'jaxdl[torch]'"
        ) from err
    if not path.is_file():
        raise CheckpointError(
            f"PyTorch checkpoint {path} does not exist or is not a file; expected "
            "the file the reference project saved (artifacts/best.ckpt)"
        )
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        unsafe = _unsafe_globals(torch, path)
        if unsafe:
            raise CheckpointError(
                f"{path} needs unsafe unpickling: besides tensors and plain containers it stores "
                f"Python objects ({', '.join(unsafe)}), and jaxdl does not run pickled code. "
                "Re-save the weights in PyTorch: "
                "torch.save({'model_state_dict': model.state_dict()}, 'best.ckpt')"
            ) from err
        raise CheckpointError(f"{path} is not a PyTorch checkpoint ({err})") from err
    except Exception as err:  # torch raises a different type for each kind of damage
        raise CheckpointError(
            f"{path} is not a PyTorch checkpoint written by torch.save "
            f"({type(err).__name__}: {err})"
        ) from err
    if not isinstance(loaded, Mapping):
        raise CheckpointError(
            f"{path} holds a {type(loaded).__name__}; expected a state_dict or a "
            "dict with the weights under 'model_state_dict'"
        )
    key = next((k for k in STATE_DICT_KEYS if isinstance(loaded.get(k), Mapping)), None)
    state_dict, info = (loaded[key], loaded) if key else (loaded, {})
    if not state_dict or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(
            f"{path} holds no model weights: expected a state_dict (names -> "
            f"tensors) or a dict holding one under {' or '.join(STATE_DICT_KEYS)}; "
            f"found keys {sorted(map(str, loaded))[:10]}"
        )
    tensors = {
        name: tensor.detach().to(torch.float32).numpy()
        for name, tensor in zip(_strip_prefixes(list(state_dict)), state_dict.values(), strict=True)
        if not name.endswith("num_batches_tracked")
    }
    config = info.get("config")
    epoch = info.get("epoch")
    return TorchCheckpoint(
        path=path,
        tensors=tensors,
        config=dict(config) if isinstance(config, Mapping) else {},
        epoch=epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None,
        metrics={
            metric: float(info[name])
            for name, metric in METRICS.items()
            if _is_number(info.get(name))
        },
        class_names=_label_map_names(info.get("meta")),
    )


def _unsafe_globals(torch, path: Path) -> list[str]:
    """The Python globals a checkpoint's pickle references beyond what weights_only allows."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # not a torch zip file at all
        return []


def _strip_prefixes(names: list[str]) -> list[str]:
    """Removes `module.` / `model.` while every name carries it (e.g. `module.model.fc.weight`)."""
    while True:
        prefix = next((p for p in PREFIXES if all(n.startswith(p) for n in names)), None)
        if prefix is None:
            return names
        names = [n[len(prefix) :] for n in names]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _label_map_names(meta: Any) -> tuple[str, ...] | None:
    """Class names in label order from the ESC-50 reference's `meta["label_map"]` (name ->
    index)."""
    if not isinstance(meta, Mapping) or not isinstance(meta.get("label_map"), Mapping):
        return None
    label_map = meta["label_map"]
    if sorted(label_map.values()) != list(range(len(label_map))):
        return None
    return tuple(sorted(label_map, key=label_map.get))


# --- Hyper-parameters -------------------------------------------------------------------------


# Each returns {config.model key: (value the tensors imply, tensor names that show it)} for the
# keys its tensors determine (dropout leaves no trace in weights).
def _infer_esc50(tensors: dict) -> dict:
    found = {}
    convs = [f"block{i}.0.weight" for i in (1, 2, 3)]
    if all(name in tensors for name in convs):
        found["channels"] = (tuple(tensors[n].shape[0] for n in convs), ", ".join(convs))
    if convs[0] in tensors:
        found["kernel_size"] = (tensors[convs[0]].shape[-1], convs[0])
    return found


def _infer_tiny_imagenet(tensors: dict) -> dict:
    modules = sorted(
        int(m.group(1))
        for name in tensors
        if (m := re.fullmatch(r"features\.(\d+)\.bn\.weight", name))
    )
    if not modules:
        return {}
    found = {"num_modules": (len(modules), "features.*.bn.weight")}
    branches = [
        f"features.{modules[0]}.{b}.weight" for b in ("branch1.0", "branch2.0", "branch3.1")
    ]
    if all(name in tensors for name in branches):
        found["branch_channels"] = (
            tuple(tensors[n].shape[0] for n in branches),
            ", ".join(branches),
        )
    return found


def _infer_cub200(tensors: dict) -> dict:
    convs = sorted(
        (
            int(m.group(1))
            for name, value in tensors.items()
            if (m := re.fullmatch(r"(\d+)\.weight", name)) and value.ndim == 4
        )
    )
    found = {}
    stages = len(Cub200GroupedCNN.widths)
    if convs and (len(convs) - 1) % (2 * stages) == 0:
        found["num_blocks"] = ((len(convs) - 1) // (2 * stages), f"{len(convs)} Conv2d weights")
    if len(convs) > 2:
        grouped = f"{convs[2]}.weight"  # stem conv, first dense conv, then the first grouped conv
        out_channels, in_per_group = tensors[grouped].shape[:2]
        found["groups"] = (out_channels // in_per_group, grouped)
    return found


def _infer_celeba(tensors: dict) -> dict:
    name = "block3.0.weight"
    return {"channels_block3": (tensors[name].shape[0], name)} if name in tensors else {}


INFER: dict[str, Callable[[dict], dict]] = {
    "esc50_cnn": _infer_esc50,
    "tiny_imagenet_inception": _infer_tiny_imagenet,
    "cub200_grouped": _infer_cub200,
    "celeba_cnn": _infer_celeba,
}


def _like(current: Any, value: Any) -> Any:
    """`value` (from YAML: lists, ints) in the type of the config's `current` value."""
    if isinstance(current, (tuple, list)):
        return tuple(value)
    if isinstance(current, float):
        return float(value)
    if isinstance(current, int) and not isinstance(current, bool):
        return int(value)
    return value


def _flag(value: Any) -> str:
    return f"'{value}'" if isinstance(value, tuple) else str(value)


# The ESC-50 reference pads `1 if k == 3 else 2`: "same" padding, as jaxdl's, for these only.
_ESC50_REFERENCE_KERNELS = (3, 5)


def imported_config(
    config: ml_collections.ConfigDict, checkpoint: TorchCheckpoint
) -> tuple[ml_collections.ConfigDict, dict[str, str]]:
    """A copy of `config` with the model hyper-parameters the checkpoint was trained with, and
    where each came from: the checkpoint's own config when it has the key, else `config`.
    Either way the value must match what the tensor shapes imply (CheckpointError naming the key).
    """
    name = config.model.name
    _check_layout(config, checkpoint)
    keys = tasks.get(config).hyperparameters
    saved = checkpoint.config.get("model")
    saved = saved if isinstance(saved, Mapping) else {}
    implied = INFER[name](checkpoint.tensors)
    merged = ml_collections.ConfigDict(config.to_dict())
    sources = {}
    for key in keys:
        from_checkpoint = key in saved
        value = _like(config.model[key], saved[key] if from_checkpoint else config.model[key])
        sources[key] = "checkpoint config" if from_checkpoint else "jaxdl config"
        if key in implied and _like(value, implied[key][0]) != value:
            shown, evidence = _like(value, implied[key][0]), implied[key][1]
            fix = (
                "the checkpoint's own config disagrees with its weights"
                if from_checkpoint
                else f"pass --config.model.{key}={_flag(shown)}"
            )
            raise CheckpointError(
                f"model.{key}={value!r} (from the {sources[key]}) does not match "
                f"{checkpoint.path}: its tensors ({evidence}) are those of {key}={shown!r}; {fix}"
            )
        merged.model[key] = value
    if name == "esc50_cnn" and merged.model.kernel_size not in _ESC50_REFERENCE_KERNELS:
        raise CheckpointError(
            f"{checkpoint.path} has model.kernel_size={merged.model.kernel_size}: the reference "
            "project pads 1 for kernel 3 and 2 for any other, so only kernel sizes "
            f"{_ESC50_REFERENCE_KERNELS} give the feature maps of jaxdl's 'same' padding; its "
            "logits would be silently wrong"
        )
    return merged, sources


def _layout(task: tasks.Task, tensors: dict) -> set[str]:
    """The tensor names of `task`'s reference state_dict, sized as `tensors` imply."""
    module = task.model
    implied = {key: value for key, (value, _) in INFER[task.model_name](tensors).items()}
    layers = LAYERS[module](module(num_classes=1, **implied))
    return {name for name, _ in _leaf_sources(layers).values()}


def _check_layout(config: ml_collections.ConfigDict, checkpoint: TorchCheckpoint) -> None:
    """CheckpointError when the tensor names are another task's model's (Jaccard index of the names
    at least 0.5 and above this config's model): said first, since read as this model's they would
    only give wrong hyper-parameter advice (`pass --config.model.channels=…`)."""
    names = set(checkpoint.tensors)
    known = {task.model_name: task for task in tasks.all_tasks() if task.model_name in INFER}
    layouts = {model: _layout(task, checkpoint.tensors) for model, task in known.items()}
    similarity = {
        model: len(names & layout) / len(names | layout) for model, layout in layouts.items()
    }
    found, own = max(similarity, key=similarity.get), config.model.name
    if found == own or similarity[found] < 0.5 or similarity[found] <= similarity[own]:
        return
    task = known[found].name
    telling = sorted((names & layouts[found]) - layouts[own]) or sorted(names & layouts[found])
    raise CheckpointError(
        f"{checkpoint.path} holds a checkpoint of the {task} task's model {found} (tensors "
        f"{_listed(telling)}), not of {own}, the model of this config's task {config.task!r}: "
        f"import it with --config {task}"
    )


# --- Tensor mapping ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Layer:
    torch: str  # module prefix in the reference state_dict, e.g. "block1.0"
    flax: str  # jaxdl submodule name, e.g. "conv0"
    kind: str  # "conv" | "bn" | "linear"


def _esc50_layers(model: Esc50CNN) -> list[Layer]:
    layers = []
    for block in range(len(model.channels)):
        layers += [
            Layer(f"block{block + 1}.0", f"conv{block}", "conv"),
            Layer(f"block{block + 1}.1", f"bn{block}", "bn"),
        ]
    return layers + [Layer("fc", "head", "linear")]


def _tiny_imagenet_layers(model: TinyImageNetInception) -> list[Layer]:
    layers, index = [Layer("stem.0", "stem", "conv")], 0
    for module in range(model.num_modules):
        torch_prefix, flax_prefix = f"features.{index}", f"module{module}"
        layers += [
            Layer(f"{torch_prefix}.branch1.0", f"{flax_prefix}_branch1x1", "conv"),
            Layer(f"{torch_prefix}.branch2.0", f"{flax_prefix}_branch3x3", "conv"),
            Layer(f"{torch_prefix}.branch3.1", f"{flax_prefix}_branch_pool", "conv"),
            Layer(f"{torch_prefix}.bn", f"{flax_prefix}_bn", "bn"),
        ]
        pooled = module + 1 in POOL_AFTER_MODULES and module + 1 < model.num_modules
        index += 2 if pooled else 1  # a MaxPool2d takes the next index of `features`
    return layers + [Layer("classifier", "head", "linear")]


def _cub200_layers(model: Cub200GroupedCNN) -> list[Layer]:
    """Flat nn.Sequential: Conv, BN, ReLU each take an index, so do MaxPool, GAP and Flatten."""
    layers, index = [Layer("0", "stem_conv", "conv"), Layer("1", "stem_bn", "bn")], 3
    for stage in range(len(model.widths)):
        for block in range(model.num_blocks):
            prefix = f"stage{stage}_block{block}"
            layers += [
                Layer(str(index), f"{prefix}_conv", "conv"),
                Layer(str(index + 1), f"{prefix}_bn", "bn"),
                Layer(str(index + 3), f"{prefix}_grouped_conv", "conv"),
                Layer(str(index + 4), f"{prefix}_grouped_bn", "bn"),
            ]
            index += 6
        if stage < len(model.widths) - 1:
            index += 1
    return layers + [Layer(str(index + 2), "head", "linear")]


def _celeba_layers(model: CelebaCNN) -> list[Layer]:
    layers = []
    for block in range(3):
        layers += [
            Layer(f"block{block + 1}.0", f"block{block}_conv", "conv"),
            Layer(f"block{block + 1}.1", f"block{block}_bn", "bn"),
        ]
    return layers + [Layer("head.1", "head", "linear")]


LAYERS: dict[type[nn.Module], Callable[[Any], list[Layer]]] = {
    Esc50CNN: _esc50_layers,
    TinyImageNetInception: _tiny_imagenet_layers,
    Cub200GroupedCNN: _cub200_layers,
    CelebaCNN: _celeba_layers,
}

_CONV_KERNEL = (2, 3, 1, 0)  # torch (O, I, kh, kw) -> Flax (kh, kw, I, O)
_LINEAR_KERNEL = (1, 0)  # torch (out, in) -> Flax (in, out)


def _leaf_sources(layers: list[Layer]) -> dict[tuple[str, ...], tuple[str, tuple[int, ...] | None]]:
    """Flax leaf path (collection, module, leaf) -> (torch tensor name, axes permutation or
    None)."""
    sources = {}
    for layer in layers:
        if layer.kind == "bn":
            sources |= {
                ("params", layer.flax, "scale"): (f"{layer.torch}.weight", None),
                ("params", layer.flax, "bias"): (f"{layer.torch}.bias", None),
                ("batch_stats", layer.flax, "mean"): (f"{layer.torch}.running_mean", None),
                ("batch_stats", layer.flax, "var"): (f"{layer.torch}.running_var", None),
            }
        else:
            permutation = _CONV_KERNEL if layer.kind == "conv" else _LINEAR_KERNEL
            sources |= {
                ("params", layer.flax, "kernel"): (f"{layer.torch}.weight", permutation),
                ("params", layer.flax, "bias"): (f"{layer.torch}.bias", None),
            }
    return sources


def _torch_shape(flax_shape: tuple[int, ...], permutation: tuple[int, ...] | None) -> tuple:
    if permutation is None:
        return tuple(flax_shape)
    return tuple(flax_shape[permutation.index(axis)] for axis in range(len(flax_shape)))


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    return ", ".join(names[:_LISTED]) + more


def flax_variables(model: nn.Module, template: Mapping, checkpoint: TorchCheckpoint) -> dict:
    """{"params", "batch_stats"} for `model`, filled from the checkpoint's tensors.

    `template` holds the model's variables or their shapes (`jax.eval_shape` of `init`); the result
    has the same structure, as float32 numpy arrays. CheckpointError names every tensor that is
    missing, unused or of the wrong shape (torch layout, both shapes).
    """
    sources = _leaf_sources(LAYERS[type(model)](model))
    flat = traverse_util.flatten_dict({k: template[k] for k in ("params", "batch_stats")})
    keys = type(model).HYPERPARAMETERS
    described = ", ".join(f"{key}={getattr(model, key)!r}" for key in keys)
    described = f"jaxdl's {type(model).__name__} ({described}, {model.num_classes} outputs)"
    values, missing, wrong = {}, [], []
    for path, leaf in flat.items():
        name, permutation = sources[path]
        if name not in checkpoint.tensors:
            missing.append(name)
            continue
        tensor, expected = checkpoint.tensors[name], _torch_shape(leaf.shape, permutation)
        if tensor.shape != expected:
            wrong.append(f"{name} has shape {tuple(tensor.shape)}, expected {expected}")
            continue
        values[path] = np.ascontiguousarray(
            tensor if permutation is None else tensor.transpose(permutation)
        )
    used = {sources[path][0] for path in flat}
    unused = sorted(set(checkpoint.tensors) - used)
    problems = []
    if wrong:
        problems.append("shape mismatch: " + _listed(wrong))
    if missing:
        problems.append("missing tensor(s): " + _listed(missing))
    if unused:
        problems.append("unused tensor(s), not part of the model: " + _listed(unused))
    if problems:
        raise CheckpointError(
            f"{checkpoint.path} does not match {described}: " + "; ".join(problems)
        )
    return traverse_util.unflatten_dict(values)
