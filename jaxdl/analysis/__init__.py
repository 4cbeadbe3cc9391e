"""What `--mode=analyze` computes (course items D1–D11, M0–M2), one job per module.

card (dataset card, split protocol), census (raw files of the official layout), distribution
(labels, class counts, imbalance), pipelines (preprocessing and augmentation as configured),
examples (before/after augmentation), baselines (majority and random), model_summary
(per-layer parameters), first_batch (batch shapes, initial loss, gradients), markdown
(analysis.md). What differs between tasks (split protocol, raw files, pipeline steps, example
panels, dataset mean/std) is asked of the task (`jaxdl/tasks/`). summary composes them into
analyze's folder, summary.json and analysis.md (`--mode=analyze` runs it).
"""
