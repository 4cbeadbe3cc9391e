"""D9–D10: a few training examples before and after augmentation, and the final model input.

Each task draws its own row of panels (`Task.example_panels`): for images the stored image, one
augmentation draw and the model input de-normalised back to pixels; for ESC-50 the waveform, the
log-mel features and the augmented model input. The augmentation draw of example i uses
`np.random.default_rng([seed, i])`: the training pipeline's functions, not its exact per-epoch
draws.
"""

from pathlib import Path

import ml_collections
import numpy as np

from jaxdl.tasks.spec import Task
from jaxdl.utils import plots


def _label_text(label, class_names: tuple[str, ...]) -> str:
    if np.ndim(label) == 0:
        return class_names[int(label)]
    positive = [name for name, value in zip(class_names, label, strict=True) if value > 0]
    return ", ".join(positive) or "no attribute"


def example_grid(
    config: ml_collections.ConfigDict, task: Task, source, class_names: tuple[str, ...], path: Path
) -> list[dict]:
    """Draws `config.analyze.examples` seeded train examples into `path` (PNG); returns one row of
    facts per example (index, file, label, whether the draw changed it, input range, round trip)."""
    count = min(config.analyze.examples, len(source))
    indices = np.sort(np.random.default_rng(config.seed).choice(len(source), count, replace=False))
    rows, facts = [], []
    for index in indices.tolist():
        record = source[index]
        augmented = (
            task.augment(record, np.random.default_rng([config.seed, index]), config.augment)
            if config.augment.enabled
            else record
        )
        x = task.model_input(augmented, config)
        label = _label_text(record["label"], class_names)
        fact = {
            "index": index,
            "filename": record["filename"],
            "label": label,
            "input_shape": list(x.shape),
            "input_min": float(x.min()),
            "input_max": float(x.max()),
        }
        row, extra = task.example_panels(
            config, record, augmented, x, f"{label} ({record['filename']})"
        )
        rows.append(row)
        fact |= extra
        facts.append(fact)
    plots.plot_panel_grid(
        rows,
        path,
        f"{config.task}: train examples, before and after "
        "augmentation" + ("" if config.augment.enabled else " (disabled)"),
    )
    return facts
