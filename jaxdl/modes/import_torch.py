"""`--mode=import_torch --torch_checkpoint=PATH`: a reference project's PyTorch checkpoint
(`artifacts/best.ckpt`) as a jaxdl checkpoint `checkpoints/<run>/` that
`--mode=evaluate --checkpoint=checkpoints/<run>` restores like one written by train.

Model hyper-parameters come from the config saved in the checkpoint when it has one, else from this
config, and must match the tensor shapes (`jaxdl.interop.torch_checkpoint`). Class names, i.e. the
label order, come from a label map saved in the checkpoint, else from the task's data (the names
evaluate checks against), else from names the config declares (CelebA's `data.attributes`); a
saved label map that disagrees with the data stops the import. The optimizer state is not
imported: a fresh one is saved, and evaluation never reads it.
"""

import pathlib

import jax
import ml_collections

from jaxdl import config as config_lib
from jaxdl import tasks
from jaxdl.data import content
from jaxdl.errors import CheckpointError, DataError
from jaxdl.interop import torch_checkpoint
from jaxdl.training import checkpoint, group
from jaxdl.training.state import count_params
from jaxdl.utils import files, runs


def class_names(
    config: ml_collections.ConfigDict, saved: torch_checkpoint.TorchCheckpoint
) -> tuple[tuple[str, ...], str]:
    """(names in label order, where they came from)."""
    try:
        test = tasks.get(config).load_split(config, "test")
        from_data, unreadable = tuple(test.class_names), None
    except DataError as err:
        from_data, unreadable = None, err
    if saved.class_names and from_data and saved.class_names != from_data:
        raise CheckpointError(
            f"{saved.path}: its label map orders the classes {list(saved.class_names[:3])}…, the "
            f"data {list(from_data[:3])}… ({len(saved.class_names)} vs {len(from_data)} classes); "
            "predictions would be mislabelled"
        )
    if saved.class_names:
        return saved.class_names, "checkpoint's label map"
    if from_data:
        return from_data, "dataset"
    if config.data.get("attributes"):
        return tuple(config.data.attributes), "config's data.attributes"
    raise DataError(
        "the class names (label order) come from the dataset, which could not be "
        f"read: {unreadable}"
    )


def import_checkpoint(
    config: ml_collections.ConfigDict, torch_path: str | pathlib.Path, workdir: pathlib.Path
) -> dict:
    """Converts `torch_path` into `workdir/checkpoints/<run>/`; returns the mode's JSON line."""
    saved = torch_checkpoint.read_torch_checkpoint(torch_path)
    config, sources = torch_checkpoint.imported_config(config, saved)
    config_lib.validate(config)
    names, names_from = class_names(config, saved)
    parts = group.build([config], names)
    template = {"params": parts.state.params, "batch_stats": parts.state.batch_stats}
    try:
        variables = torch_checkpoint.flax_variables(parts.model, template, saved)
    except CheckpointError as err:
        raise CheckpointError(
            f"{err} (the {len(names)} classes come from the {names_from})"
        ) from err
    placed = jax.tree.map(lambda new, old: jax.device_put(new, old.sharding), variables, template)
    state = parts.state.replace(**placed)

    epoch = saved.epoch if saved.epoch is not None and saved.epoch >= 0 else 0
    hyperparameters = {key: config.model[key] for key in sources}
    meta = {
        "config": config.to_dict(),
        "class_names": list(names),
        "epoch": epoch,
        "metrics": {f"val/{k}": v for k, v in saved.metrics.items()},
        "imported_from": {
            "path": str(saved.path.absolute()),
            "sha256": content.sha256_file(saved.path),
        },
    }
    # Orbax ranks steps by the best metric; a checkpoint that saved none is restored as the latest.
    best = config.train.best_metric
    metrics = saved.metrics if best in saved.metrics else None
    directory = files.unique_dir(workdir / "checkpoints", runs.run_name(config, "import_torch"))
    with checkpoint.Checkpoints(directory, best, config.train.best_mode) as checkpoints:
        checkpoints.save(epoch, state, meta, metrics)
        checkpoints.wait()

    print(
        f"imported {saved.path}: {len(saved.tensors)} tensors, "
        f"{count_params(state.params):,} parameters, every tensor used and every shape checked"
    )
    for key, value in hyperparameters.items():
        print(f"  model.{key} = {value!r}  (from the {sources[key]})")
    print(
        f"  {len(names)} classes from the {names_from}; epoch {epoch}; saved metrics "
        f"{saved.metrics or 'none'}\n  checkpoint: {directory}\n  evaluate it with "
        f"--mode=evaluate --checkpoint={directory}"
    )
    return {
        "mode": "import_torch",
        "run": directory.name,
        "checkpoint": str(directory),
        "torch_checkpoint": str(saved.path),
        "tensors": len(saved.tensors),
        "parameters": count_params(state.params),
        "epoch": epoch,
        "hyperparameters": hyperparameters,
        "hyperparameters_from": sources,
        "classes": len(names),
        "class_names_from": names_from,
        **{f"val/{k}": v for k, v in saved.metrics.items()},
    }


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path, args) -> dict:
    if not args.torch_checkpoint:
        raise CheckpointError(
            "--mode=import_torch needs --torch_checkpoint=PATH (the PyTorch "
            "project's checkpoint, e.g. artifacts/best.ckpt)"
        )
    return import_checkpoint(config, args.torch_checkpoint, workdir)
