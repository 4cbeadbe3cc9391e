"""`--mode=grid_search` (M5; M8 with a narrower grid): lr x weight decay x the task's two model
hyper-parameters x seeds, `grid.epochs` each, all fed by one data pipeline.

Members that share an architecture form one group, trained together (`training/group.py`:
stepped one after another through one compiled step on CPU, vmapped on accelerators); each
architecture is its own group. A vmapped group whose compiled step needs more device memory than
`grid.memory_limit_gb` (0: the device's own) is trained in chunks of the largest member count that
fits, with the same results, and says so with the figures (`training/grid.py`).
Every member gets its own TensorBoard run under `logs/<grid>/<member>/` (so curves overlay when
TensorBoard points at `logs/<grid>/`), hparams the HParams tab displays with their metric values,
and its own best checkpoint under
`checkpoints/<grid>/<member>/`. The grid writes `summary.csv` and `summary.md` ranked by the best
validation metric, `best_config.py`, a config file `train` accepts as is, and `config.json`,
the grid's own resolved config (`--mode=report` rebuilds the grid's command from it). Data order
and augmentation come from the grid's `seed`; `grid.seeds` vary initialisation and dropout, so a
member whose seed equals `seed` reproduces `train` run alone with its configuration.
Rerunning the same command resumes an interrupted grid: finished members are not retrained.
"""

import pathlib
import time

import jax
import ml_collections

from jaxdl.analysis import markdown
from jaxdl.errors import JaxdlError
from jaxdl.training import fit, grid, group, hparams
from jaxdl.training.data import training_data
from jaxdl.utils import files, runs


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path, args) -> dict:
    """Loads and checks the data, then trains the grid in its run directory, locked meanwhile."""
    del args
    members = grid.expand(config)
    data = training_data(config, jax.device_count())
    with runs.open_run(workdir / "logs", config, "grid_search") as (log_dir, resumed):
        return _run_grid(config, workdir, members, data, log_dir, resumed)


def _run_grid(
    config: ml_collections.ConfigDict,
    workdir: pathlib.Path,
    members: list[ml_collections.ConfigDict],
    data: fit.Data,
    log_dir: pathlib.Path,
    resumed: bool,
) -> dict:
    checkpoint_dir = workdir / "checkpoints" / log_dir.name
    files.write_json_atomic(log_dir / "config.json", config.to_dict())  # the grid's own config
    strategy = group.resolve_strategy(config.grid.strategy)
    print(
        f"grid {log_dir.name}{' (resumed)' if resumed else ''}: strategy {strategy}\n"
        f"  logs: {log_dir}"
    )
    print("\n".join(grid.plan(config, members, fit.batches_per_epoch(data))), flush=True)
    started = time.perf_counter()
    results = grid.train_members(config, members, log_dir, checkpoint_dir, strategy, data)
    seconds = time.perf_counter() - started
    hparams.log(results)

    rows = grid.summary_rows(results, config)
    files.write_csv_atomic(log_dir / "summary.csv", rows, list(rows[0]))
    files.write_text_atomic(log_dir / "summary.md", markdown.rows_table(rows, list(rows[0])))
    metric = config.train.best_metric
    top = rows[0]
    if top["notes"]:
        runs.write_status(log_dir, config, "failed")
        raise JaxdlError(f"every member of grid {log_dir.name} diverged; see {log_dir}/summary.md")
    best = next(r for r in results if r.member.name == top["run"]).member.config
    grid.write_best_config(
        log_dir / "best_config.py",
        best,
        config,
        f"Best of grid {log_dir.name}: {top['run']}, val {metric} "
        f"{top[f'val/{metric}']:.4f} at epoch {top['best_epoch']}.",
    )
    runs.write_status(log_dir, config, "finished")
    print(markdown.rows_table(rows[:10], list(rows[0])))
    return {
        "mode": "grid_search",
        "run": log_dir.name,
        "members": len(members),
        "groups": len({grid.architecture(m) for m in members}),
        "strategy": strategy,
        "seconds": seconds,
        "best_run": top["run"],  # and its best epoch's figures:
        "best_epoch": top["best_epoch"],
        f"val/{metric}": top[f"val/{metric}"],
        "val/loss": top["val/loss"],
        "best_config": str(log_dir / "best_config.py"),
        "summary": str(log_dir / "summary.md"),
    }
