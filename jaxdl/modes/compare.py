"""`--mode=compare` (M7): overlay the curves of finished runs, tabulate their final and best values.

`--runs=A,B,...` names runs under `<workdir>/logs/`, `logs/<run>` directories, or globs of either;
a glob keeps the training runs it matches and names the other folders it skips. The first run is
the baseline. The curves come from each run's `metrics.jsonl` and the labels from the
hyper-parameters that differ between the runs' `config.json` (`jaxdl/report/comparison.py`).

Outputs, in a new `logs/compare_<task>_<timestamp>/`: `train_loss.png`, `val_loss.png`,
`val_<metric>.png` (one line per run), and `comparison.csv` / `comparison.md` (one row per run).
"""

import datetime
import pathlib

import jax
import ml_collections

from jaxdl.errors import ConfigError
from jaxdl.report import comparison
from jaxdl.training import fit, grid, group
from jaxdl.training.data import training_data
from jaxdl.training.variants import one_factor_variants
from jaxdl.utils import files, runs


def _train_and_compare(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
    """`compare.run=True`: trains the one-factor variants (grid machinery: variants sharing an
    architecture train together), then compares them; resumable and locked like a grid."""
    variants = one_factor_variants(config)
    data = training_data(config, jax.device_count())
    with runs.open_run(workdir / "logs", config, "compare") as (log_dir, resumed):
        return _compare_variants(config, workdir, variants, data, log_dir, resumed)


def _compare_variants(
    config: ml_collections.ConfigDict,
    workdir: pathlib.Path,
    variants: list[ml_collections.ConfigDict],
    data: fit.Data,
    log_dir: pathlib.Path,
    resumed: bool,
) -> dict:
    files.write_json_atomic(log_dir / "config.json", config.to_dict())
    print(
        f"compare {log_dir.name}{' (resumed)' if resumed else ''}: baseline + "
        f"{len(variants) - 1} one-factor variants x {variants[0].train.epochs} epochs"
    )
    results = grid.train_members(
        config,
        variants,
        log_dir,
        workdir / "checkpoints" / log_dir.name,
        group.resolve_strategy(config.grid.strategy),
        data,
    )
    trained = [r.member.log_dir for r in results if r.history]
    baseline = results[0].member.log_dir  # one_factor_variants: the baseline first
    loaded = comparison.load(trained, config.train.best_metric, config.train.best_mode, baseline)
    result = comparison.write(loaded, log_dir)
    runs.write_status(log_dir, config, "finished")
    print((log_dir / "comparison.md").read_text(), end="")
    return result


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path, args) -> dict:
    if config.compare.run:
        return _train_and_compare(config, workdir)
    if not args.runs:
        raise ConfigError(
            "--mode=compare needs --runs=NAME,GLOB,... (runs under "
            f"{workdir / 'logs'} or their directories)"
        )
    selected = comparison.resolve_runs(args.runs, workdir / "logs")
    if selected.skipped:
        print(
            f"skipped {len(selected.skipped)} folder(s) --runs matched that are not training "
            f"runs: {', '.join(d.name for d in selected.skipped)}"
        )
    loaded = comparison.load(
        selected.runs, config.train.best_metric, config.train.best_mode, selected.runs[0]
    )
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = config.run_name or f"compare_{config.task}_{stamp}"
    out_dir = files.unique_dir(workdir / "logs", name)
    result = comparison.write(loaded, out_dir)
    print(
        f"compared {len(loaded.rows)} runs on val/{loaded.metric} against {loaded.baseline} "
        f"(differing: {', '.join(result['differing_keys']) or 'nothing'}) -> {out_dir}"
    )
    print((out_dir / "comparison.md").read_text(), end="")
    return {**result, "skipped": [str(d) for d in selected.skipped]}
