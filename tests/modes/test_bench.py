"""`--mode=bench` times the input pipeline beside the step: its keys in the JSON line, on generated
data when no `data.dir` is set (a bench never downloads)."""

import json

from jaxdl.modes import ModeArgs, run_mode
from tests.helpers import tiny_esc50_config


def test_bench_times_the_input_pipeline_beside_the_step(tmp_path, capsys):
    config = tiny_esc50_config(tmp_path)
    config.data.source = "auto"  # no data.dir: the pipeline is timed on generated data
    config.bench.update(warmup=1, steps=2)
    result = json.loads(json.dumps(run_mode("bench", config, tmp_path, ModeArgs())))
    assert result["pipeline_data"] == "synthetic"
    assert result["pipeline_workers"] == 0 and result["pipeline_prefetch"] == 4  # CPU: auto
    assert result["pipeline_batches_per_s"] > 0 and result["pipeline_first_batch_s"] > 0
    assert result["pipeline_samples_per_s"] == result["pipeline_batches_per_s"] * 16
    assert result["train_samples_per_s"] > 0
    shown = capsys.readouterr().out.splitlines()[-1]
    assert shown.startswith(f"train step {result['train_samples_per_s']:.0f} samples/s; input ")
    assert "(0 workers, synthetic data)" in shown
    assert list(tmp_path.iterdir()) == []  # bench writes nothing
