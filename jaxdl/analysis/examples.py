"""D9–D10: a few training examples before and after augmentation, and the final model input.

Images: the stored image (decoded, resized), one augmentation draw, and the model input
de-normalised back to pixels (it must equal the augmented image up to rounding, which checks the
normalisation). ESC-50: the waveform (mono, resampled), the log-mel features, and the augmented
model input. The augmentation draw of example i uses `np.random.default_rng([seed, i])`: the
training pipeline's functions, not its exact per-epoch draws.
"""

from pathlib import Path

import ml_collections
import numpy as np

from jaxdl.data import audio, esc50, image
from jaxdl.data.tasks import TaskData
from jaxdl.utils import plots


def _label_text(label, class_names: tuple[str, ...]) -> str:
    if np.ndim(label) == 0:
        return class_names[int(label)]
    positive = [name for name, value in zip(class_names, label) if value > 0]
    return ", ".join(positive) or "no attribute"


def _range(x: np.ndarray) -> str:
    return f"[{x.min():.2f}, {x.max():.2f}]"


def example_grid(config: ml_collections.ConfigDict, task: TaskData, source,
                 class_names: tuple[str, ...], path: Path) -> list[dict]:
    """Draws `config.analyze.examples` seeded train examples into `path` (PNG); returns one row of
    facts per example (index, file, label, whether the draw changed it, input range, round trip)."""
    count = min(config.analyze.examples, len(source))
    indices = np.sort(np.random.default_rng(config.seed).choice(len(source), count, replace=False))
    rows, facts = [], []
    for index in indices.tolist():
        record = source[index]
        augmented = (task.augment(record, np.random.default_rng([config.seed, index]),
                                  config.augment) if config.augment.enabled else record)
        x = task.model_input(augmented, config)
        label = _label_text(record["label"], class_names)
        fact = {"index": index, "filename": record["filename"], "label": label,
                "input_shape": list(x.shape), "input_min": float(x.min()),
                "input_max": float(x.max())}
        caption = f"{label} ({record['filename']})"
        if config.task == "esc50":
            waveform = audio.load_waveform(
                esc50.resolve_data_dir(config) / esc50.AUDIO_DIR / record["filename"],
                config.features.sample_rate)
            features = np.asarray(record["features"])
            fact["augmentation_changed"] = bool(not np.array_equal(features, x[..., 0]))
            rows.append([
                plots.Panel("waveform", waveform, f"{caption}\nwaveform, mono "
                            f"{config.features.sample_rate} Hz", config.features.sample_rate),
                plots.Panel("spectrogram", features, f"log-mel {features.shape}, "
                            f"range {_range(features)}"),
                plots.Panel("spectrogram", x[..., 0], f"augmented = model input {x.shape}"),
            ])
        else:
            shown = image.denormalize(x, config.preprocess.mean, config.preprocess.std)
            fact["augmentation_changed"] = bool(not np.array_equal(record["image"],
                                                                   augmented["image"]))
            fact["denormalized_max_abs_diff"] = int(np.abs(
                shown.astype(np.int16) - augmented["image"].astype(np.int16)).max())
            rows.append([
                plots.Panel("image", record["image"], f"{caption}\nstored {record['image'].shape}"),
                plots.Panel("image", augmented["image"], "augmented"),
                plots.Panel("image", shown, f"model input {x.shape}, range {_range(x)},\n"
                            "de-normalised"),
            ])
        facts.append(fact)
    plots.plot_panel_grid(rows, path, f"{config.task}: train examples, before and after "
                          "augmentation" + ("" if config.augment.enabled else " (disabled)"))
    return facts
