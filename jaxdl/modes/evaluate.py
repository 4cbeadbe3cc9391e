"""`--mode=evaluate` (M9): restore a run's best checkpoint and score one split
(`training/evaluation.py`: the outputs, and why the model comes from the checkpoint's config)."""

import pathlib

import ml_collections

from jaxdl.errors import CheckpointError
from jaxdl.training import evaluation
from jaxdl.utils import files


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path, args) -> dict:
    """`--checkpoint=checkpoints/<run> [--split=test]`; outputs go to a new
    `logs/evaluate/<run>_<split>/`, made only once the split is scored (a failed evaluate leaves
    nothing behind). Apart from the runs in `logs/`, so a glob of training runs
    (`--mode=compare --runs='esc50_train_*'`) never matches an evaluation."""
    if not args.checkpoint:
        raise CheckpointError("--mode=evaluate needs --checkpoint=checkpoints/<run>")
    scores = evaluation.score_checkpoint(config, args.checkpoint, args.split)
    run_name = pathlib.Path(args.checkpoint).name
    parent = workdir / "logs" / evaluation.EVALUATIONS_DIR
    out_dir = files.unique_dir(parent, f"{run_name}_{args.split}")
    return {"mode": "evaluate", **evaluation.write_outputs(scores, out_dir)}
