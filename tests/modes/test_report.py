"""--mode=report on real runs of every mode (analyze, overfit, lr_finder, grid_search, train,
compare, evaluate) on a tiny synthetic ESC-50: the report holds the numbers the logs hold, embeds
figures that exist, leaves judgement to the author, says how to produce what is missing, keeps an
earlier report, and its commands parse back to the runs' configs."""

import csv
import json
import pathlib
import re
import shlex
import shutil
import types

import jax
import pytest
from absl import flags
from ml_collections import config_flags
from PIL import Image

from jaxdl import config as config_lib
from jaxdl.errors import DataError
from jaxdl.modes import ModeArgs, analyze, compare, evaluate, grid_search, lr_finder, report, train
from jaxdl.report import commands, discover
from tests.helpers import load_config, tiny_esc50_config

ALL_SECTIONS_BUT_0_10_11_12 = [
    "1) Data",
    "2) Model",
    "3) Overfitting a small subset",
    "4) LR finder",
    "5) Mini grid search",
    "6) Full training",
    "7) Curve comparisons",
    "8) Extra iteration",
    "9) Final evaluation (test)",
]


def _config(workdir: pathlib.Path, **train_keys):
    """10 classes x 2 half-second clips per fold (train 60 / val 20 / test 20), a narrow model."""
    config = tiny_esc50_config(workdir, **train_keys)
    config.data.synthetic.update(clips_per_class_per_fold=2, clip_seconds=0.5)
    config.model.channels = (8, 16, 16)
    config.model.kernel_size = 3
    return config


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A report before any run, every mode run once, then the report of all of them."""
    workdir = tmp_path_factory.mktemp("project")
    empty = report.run(_config(workdir), workdir, ModeArgs())
    empty_text = pathlib.Path(empty["report"]).read_text()

    analyzed = analyze.run(_config(workdir), workdir, ModeArgs())
    finder_config = _config(workdir)
    finder_config.lr_finder.update(start=1e-4, end=1.0, steps=12)
    finder = lr_finder.run(finder_config, workdir, ModeArgs())
    overfit = train.train_and_evaluate(_config(workdir, overfit_n=16, epochs=3), workdir)
    grid_config = _config(workdir)
    grid_config.grid.update(lr=(1e-2, 3e-3), weight_decay=(1e-4,), epochs=1, strategy="sequential")
    grid_config.grid.model.update(channels=((8, 16, 16),), kernel_size=(3,))
    grid = grid_search.run(grid_config, workdir, ModeArgs())
    trained = train.train_and_evaluate(_config(workdir), workdir)
    compare.run(_config(workdir), workdir, ModeArgs(runs=(f"{grid['run']}/*",)))
    evaluate.run(_config(workdir), workdir, ModeArgs(checkpoint=trained["checkpoint"], split="val"))

    result = report.run(_config(workdir), workdir, ModeArgs())
    return types.SimpleNamespace(
        workdir=workdir,
        empty=empty,
        empty_text=empty_text,
        result=result,
        text=pathlib.Path(result["report"]).read_text(),
        analyzed=analyzed,
        finder=finder,
        overfit=overfit,
        grid=grid,
        trained=trained,
    )


def _section(text: str, number: int) -> str:
    """The text of template section `number` (from its heading to the next one)."""
    start = text.index(f"\n## {number}) ")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def _images(text: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)


def test_result_names_the_report_and_its_only_missing_section(project):
    result = project.result
    assert result["report"] == str(project.workdir / "logs" / "report" / "esc50" / "report.md")
    assert result["mode"] == "report" and result["task"] == "esc50"
    # Every mode ran once: only §8 (a second grid) has nothing to show.
    assert result["sections_missing"] == ["8) Extra iteration"]
    assert result["sections_filled"] == 12


def test_report_holds_the_numbers_found_in_the_logs(project):
    text, workdir = project.text, project.workdir
    out = pathlib.Path(project.analyzed["out_dir"])
    summary = json.loads((out / "summary.json").read_text())
    data, model = _section(text, 1), _section(text, 2)
    for split, size in summary["splits"].items():
        assert f"| {split.capitalize()} | {size} |" in data
    assert (summary["splits"]["train"], summary["splits"]["val"]) == (60, 20)
    majority = summary["baselines"]["majority"]["val"]["accuracy"]
    assert f"| majority class (cat) | val | {majority:.4f} |" in model
    assert f"Initial loss {summary['first_batch']['loss']:.4f}" in model
    assert f"**Total number of parameters**: {summary['parameters']['total']:,}" in model
    assert summary["parameters"]["total"] == 3_818

    overfit_log = workdir / "logs" / project.overfit["run"] / "metrics.jsonl"
    overfit = [json.loads(line) for line in overfit_log.read_text().splitlines()]
    assert "`N = 16`" in _section(text, 3)
    assert f"→ {overfit[-1]['train/loss']:.4f} (epoch 3)" in _section(text, 3)

    finder = json.loads((workdir / "logs" / project.finder["run"] / "summary.json").read_text())
    assert f"**Suggested LR**: {finder['suggested_lr']:.3g}" in _section(text, 4)
    assert f"{finder['window'][0]:.3g} → {finder['window'][1]:.3g}" in _section(text, 4)

    rows = list(csv.DictReader((workdir / "logs" / project.grid["run"] / "summary.csv").open()))
    grid = _section(text, 5)
    assert f"`{rows[0]['run']}` — val accuracy {float(rows[0]['val/accuracy']):.4f}" in grid
    assert all(f"| {row['run']} | {row['lr']} |" in grid for row in rows)
    assert "| seed | val/accuracy | val/loss | best_epoch | notes |" in grid

    per_class = list(
        csv.DictReader(
            (workdir / "logs" / project.trained["run"] / "test" / "per_class.csv").open()
        )
    )
    correct = sum(float(r["recall"]) * int(r["support"]) for r in per_class)
    accuracy = correct / sum(int(r["support"]) for r in per_class)
    assert accuracy == pytest.approx(project.trained["test/accuracy"])
    test = _section(text, 9)
    assert (
        f"**Main metric** (accuracy): test {accuracy:.4f}, validation "
        f"{project.trained['val/accuracy']:.4f}" in test
    )
    # The evaluate run, found in logs/evaluate/ by what its scores.json says it scored.
    evaluated = f"logs/evaluate/{project.trained['run']}_val"
    assert f"| `{evaluated}` | val | accuracy {project.trained['val/accuracy']:.4f}" in test


def test_every_embedded_figure_is_a_png_copied_next_to_the_report(project):
    report_dir = pathlib.Path(project.result["report"]).parent
    links = _images(project.text)
    names = {pathlib.Path(link).name for link in links}
    assert names == {
        "analyze_class_distribution.png",
        "analyze_examples.png",
        "overfit_loss.png",
        "overfit_accuracy.png",
        "lr_finder.png",
        "training_loss.png",
        "training_accuracy.png",
        "compare1_train_loss.png",
        "compare1_val_loss.png",
        "compare1_val_accuracy.png",
        "confusion_matrix_test.png",
    }
    assert project.result["figures"] == len(links) == len(names)
    for link in links:
        path = report_dir / link
        assert path.parent.name.startswith("figures-") and path.parent.parent == report_dir
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] > 300 and image.size[1] > 200


def test_judgement_is_left_to_the_author_as_marked_placeholders(project):
    todos = [line for line in project.text.splitlines() if line.startswith("> **TODO (author):**")]
    for item in (
        "D4",
        "D5",
        "D6",
        "D8",
        "D9",
        "D10",
        "M0",
        "M1",
        "M3",
        "M4",
        "M5",
        "M6",
        "M7",
        "M8",
        "M9",
    ):
        assert any(line.startswith(f"> **TODO (author):** {item}:") for line in todos), item
    assert "- **Student**: **TODO (author):**" in project.text
    assert _section(project.text, 10).count("> **TODO (author):**") == 3


def test_a_mode_not_run_yet_names_the_command_that_produces_it(project):
    assert project.empty["sections_missing"] == ALL_SECTIONS_BUT_0_10_11_12
    text = project.empty_text
    for number, mode in (
        (1, "analyze"),
        (3, "train"),
        (4, "lr_finder"),
        (5, "grid_search"),
        (6, "train"),
        (7, "compare"),
        (9, "train"),
    ):
        section = _section(text, number)
        assert "*Not run yet.* This command produces" in section, number
        assert f"python -m jaxdl.main --config esc50 --mode={mode} " in section
    assert "--config.train.overfit_n=32" in _section(text, 3)
    assert "not run yet" in _section(project.text, 8).lower()


def test_commands_carry_each_runs_overrides(project):
    general = _section(project.text, 0)
    train_line = next(line for line in general.splitlines() if "Training (M6)" in line)
    assert "--mode=train" in train_line and "--config.train.epochs=2" in train_line
    assert "'--config.model.channels=(8,16,16)'" in train_line
    assert "--config.train.overfit_n=16" in next(
        line for line in general.splitlines() if "Overfit (M3)" in line
    )
    grid_line = next(line for line in general.splitlines() if "Grid search (M5)" in line)
    assert "'--config.grid.lr=(0.01,0.003)'" in grid_line
    assert "'--config.grid.weight_decay=(0.0001,)'" in grid_line
    assert "--config.lr_finder.steps=12" in general
    assert f"--checkpoint={project.trained['checkpoint']}" in general
    assert f"--workdir={project.workdir}" in train_line
    assert "```bash" in _section(project.text, 11)
    # The runs used a temporary cache folder: no command names it, as no number depends on it.
    assert "cache_dir" not in general and "cache_dir" not in _section(project.text, 11)


def _parsed(command: str) -> dict:
    """The config a command line gives, parsed by config_flags as `jaxdl.main` parses it."""
    arguments = shlex.split(command)
    config_file = config_lib.config_path(arguments[arguments.index("--config") + 1])
    argv = [
        "prog",
        "--config",
        str(config_file),
        *[a for a in arguments if a.startswith("--config.")],
    ]
    flag_values = flags.FlagValues()
    holder = config_flags.DEFINE_config_file(
        "config", None, "", flag_values=flag_values, sys_argv=argv
    )  # overrides are read from here
    flag_values(argv)
    return commands.json_shaped(holder.value)


def test_each_rebuilt_command_parses_back_to_its_runs_config(project):
    runs = discover.find_runs(project.workdir / "logs", "esc50")
    for kind, mode in (
        ("analyze", "analyze"),
        ("overfit", "train"),
        ("lr_finder", "lr_finder"),
        ("grid_search", "grid_search"),
        ("train", "train"),
    ):
        run = runs.latest(kind)
        command = commands.command(
            "esc50",
            mode,
            project.workdir,
            config_overrides=commands.overrides(run.config, commands.task_defaults("esc50")),
        )
        assert command in project.text, kind
        read = [key for key in config_lib.flatten(run.config) if commands.reads(mode, key)]
        parsed, ran = config_lib.flatten(_parsed(command)), config_lib.flatten(run.config)
        assert {k: parsed[k] for k in read} == {k: ran[k] for k in read}, kind


def test_override_reconstruction_is_the_exact_difference():
    defaults = commands.task_defaults("esc50")
    config = load_config("esc50", "synthetic")
    config.train.epochs = 2
    config.model.channels = (8, 16, 16)
    config.grid.weight_decay = (1e-4,)
    config.grid.model.channels = ((8, 16, 16),)
    config.train.evaluate_test = False
    config.run_name = "my run"
    changed = commands.json_shaped(config)
    assert commands.overrides(changed, defaults) == [
        "--config.data.source=synthetic",
        "--config.grid.model.channels=((8,16,16),)",
        "--config.grid.weight_decay=(0.0001,)",
        "--config.model.channels=(8,16,16)",
        "--config.run_name=my run",
        "--config.train.epochs=2",
        "--config.train.evaluate_test=False",
    ]
    assert commands.overrides(defaults, defaults) == []
    line = commands.command(  # a grid reads every key changed here
        "esc50",
        "grid_search",
        pathlib.Path("."),
        config_overrides=commands.overrides(changed, defaults),
    )
    assert "--workdir" not in line and "'--config.run_name=my run'" in line
    assert _parsed(line) == changed


def test_a_command_carries_only_what_its_mode_reads():
    """A train run started from a grid's best_config.py holds that grid's `grid.*`, and a session
    may use a temporary cache folder: neither changes a train run, so its command holds neither;
    `data.dir`, where the run read its data, stays."""
    config = load_config("esc50")
    config.data.dir = "/data/ESC-50-master"
    config.data.cache_dir = "/tmp/tmpabc123/cache"
    config.train.lr = 0.01
    config.grid.lr = (0.02,)
    config.grid.model.kernel_size = (3,)
    config.lr_finder.steps = 50
    config.compare.lr = (1e-3,)
    overrides = commands.overrides(commands.json_shaped(config), commands.task_defaults("esc50"))
    assert "--config.data.cache_dir=/tmp/tmpabc123/cache" in overrides

    def line(mode: str) -> str:
        return commands.command("esc50", mode, pathlib.Path("."), config_overrides=overrides)

    assert line("train") == (
        "python -m jaxdl.main --config esc50 --mode=train "
        "--config.data.dir=/data/ESC-50-master --config.train.lr=0.01"
    )
    assert line("evaluate") == line("train").replace("=train", "=evaluate")
    assert line("grid_search") == (
        "python -m jaxdl.main --config esc50 --mode=grid_search "
        "--config.data.dir=/data/ESC-50-master '--config.grid.lr=(0.02,)' "
        "'--config.grid.model.kernel_size=(3,)' --config.train.lr=0.01"
    )
    # analyze counts the parameters of the grid's architectures; compare and the LR finder read
    # their own sections.
    assert "'--config.grid.model.kernel_size=(3,)'" in line("analyze")
    assert "grid.lr" not in line("analyze")
    assert "--config.lr_finder.steps=50" in line("lr_finder") and "grid" not in line("lr_finder")
    assert "'--config.compare.lr=(0.001,)'" in line("compare")
    assert "lr_finder" not in line("compare") and "grid.lr" not in line("compare")
    assert not any("cache_dir" in line(mode) for mode in ("train", "grid_search", "report"))


def test_environment_lists_the_versions_and_devices(project):
    general = _section(project.text, 0)
    assert f"`jax == {jax.__version__}`" in general
    for package in ("jaxlib", "flax", "optax"):
        assert f"`{package} == " in general and f"`{package} == not installed`" not in general
    assert f"backend `{jax.default_backend()}`, {jax.device_count()} device(s)" in general


def test_final_training_is_checked_against_the_grids_best_configuration(project):
    # The grid searched weight decay 1e-4 only; the final training used the config's 1e-5.
    assert "the final training differs from the grid's best configuration" in _section(
        project.text, 11
    )
    assert "weight_decay 1e-05 (grid best 0.0001)" in _section(project.text, 11)


def test_a_new_report_keeps_the_previous_one_whole(project):
    report_path = pathlib.Path(project.result["report"])
    # The first report (before any run) was kept when the full one replaced it.
    assert pathlib.Path(project.result["previous"]).read_text() == project.empty_text
    again = report.run(_config(project.workdir), project.workdir, ModeArgs())
    kept = pathlib.Path(again["previous"])
    assert kept.parent == report_path.parent and kept.name.startswith("report-")
    assert kept.read_text() == project.text
    old_links, new_links = _images(project.text), _images(report_path.read_text())
    assert {pathlib.Path(link).parent for link in old_links}.isdisjoint(
        {pathlib.Path(link).parent for link in new_links}
    )
    assert all((report_path.parent / link).is_file() for link in old_links + new_links)


def test_latest_run_is_the_last_finished_and_failed_runs_are_listed(project, tmp_path):
    logs = tmp_path / "logs"
    source = project.workdir / "logs" / project.trained["run"]
    for name in ("b_older", "a_newer"):  # names must not decide: finishing order does
        shutil.copytree(source, logs / name)
    (logs / "a_newer" / "run_status.json").touch()
    failed = logs / "c_failed"
    shutil.copytree(source, failed)
    status = json.loads((failed / "run_status.json").read_text()) | {"status": "failed"}
    (failed / "run_status.json").write_text(json.dumps(status))
    runs = discover.find_runs(logs, "esc50")
    assert [run.name for run in runs.all("train")] == ["b_older", "a_newer"]
    assert runs.latest("train").name == "a_newer" and runs.failed == [failed]
    assert discover.find_runs(logs, "celeba").all("train") == []


def test_a_damaged_line_of_a_runs_metrics_is_named_and_no_report_written(project, tmp_path):
    run = shutil.copytree(
        project.workdir / "logs" / project.trained["run"],
        tmp_path / "logs" / project.trained["run"],
    )
    metrics = run / "metrics.jsonl"
    lines = metrics.read_text().splitlines(keepends=True)
    metrics.write_text(lines[0] + lines[1][:20] + "\n")  # line 2 cut short, then a newline
    with pytest.raises(DataError, match=f"{metrics}, line 2: not JSON"):
        report.run(_config(tmp_path), tmp_path, ModeArgs())
    assert not (tmp_path / "logs" / "report" / "esc50" / "report.md").exists()
