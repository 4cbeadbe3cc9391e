"""`analysis.md`: the analyze summary as a human-readable page, in the course's item order
(D1–D11, M0–M2). It only formats `summary.json`'s numbers; it computes none."""

from collections.abc import Callable, Mapping, Sequence

MAX_LISTED = 20  # problem files, class names and per-tensor rows shown before "…"


def _number(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 and value else f"{value:.4f}"
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    """A markdown table (then a blank line); numbers formatted as everywhere in the analysis."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_number(v) for v in row) + " |" for row in rows]
    return lines + [""]


def rows_table(rows: Sequence[Mapping], columns: Sequence[str]) -> str:
    """`rows` (dicts) as a markdown table of `columns`, as one string."""
    return "\n".join(table(columns, [[row[c] for c in columns] for row in rows]))


def _shape(shape) -> str:
    if shape is None:
        return "–"
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _listing(values: Sequence[str]) -> str:
    shown = ", ".join(str(v) for v in values[:MAX_LISTED])
    return shown + (f", … ({len(values)} in all)" if len(values) > MAX_LISTED else "")


def _measured(census: dict) -> str:
    everything = census["all"]
    counts = (
        f"{everything['files']:,} files ({everything['missing']} missing, "
        f"{everything['corrupt']} corrupt)"
    )
    if census["kind"] == "audio":
        seconds = everything["seconds"] or {}
        return (
            f"{counts}; sample rates {everything['sample_rates']}; channels "
            f"{everything['channels']}; {everything['subtypes']}; length "
            f"{seconds.get('min', 0):.3f}–{seconds.get('max', 0):.3f} s"
        )
    width, height = everything["width"] or {}, everything["height"] or {}
    return (
        f"{counts}; formats {everything['formats']}; modes {everything['modes']}; "
        f"{everything['distinct_sizes']} distinct sizes, width {width.get('min', 0):g}–"
        f"{width.get('max', 0):g} px, height {height.get('min', 0):g}–{height.get('max', 0):g} px"
    )


def _card(s: dict) -> list[str]:
    card = s["card"]
    classes = f"{card['num_classes']}"
    if card["num_classes"] != card["real_num_classes"]:
        classes += f" (the real dataset has {card['real_num_classes']})"
    rows = [
        ("dataset", card["dataset"]),
        ("homepage", card["homepage"]),
        ("source", card["source"]),
        ("folder", card["data_dir"]),
        ("raw format (documented)", card["raw_format"]),
        ("raw files (measured, D5)", _measured(s["census"])),
        ("task", f"{card['task_type']} ({card['objective']})"),
        ("classes" if card["task_type"] == "multiclass" else "attributes", classes),
        ("names", _listing(card["class_names"])),
        ("model input per example (meta)", _shape(card["input_shape"])),
    ]
    return ["## D1. Dataset card", "", *table(("", ""), rows)]


def _splits(s: dict) -> list[str]:
    sizes = s["splits"]
    lines = [
        "## D2. Split sizes (exact)",
        "",
        *table(("split", "examples"), [*sizes.items(), ("total", sum(sizes.values()))]),
    ]
    shared = {pair: files for pair, files in s["split_overlap"].items() if files}
    lines.append(
        "No file is in two splits."
        if not shared
        else "**Files in two splits:** "
        + "; ".join(f"{pair}: {_listing(files)}" for pair, files in shared.items())
    )
    return lines + ["", "## D3. How the splits are made", "", s["card"]["split_protocol"] + ".", ""]


def _distribution(s: dict) -> list[str]:
    lines = ["## D4. Class distribution", ""]
    dist = s["distribution"]
    if s["card"]["task_type"] == "multiclass":
        lines += table(
            (
                "split",
                "examples",
                "classes present",
                "min",
                "max",
                "imbalance ratio (max/min)",
                "majority share",
                "normalised entropy",
            ),
            [
                (
                    split,
                    d["examples"],
                    d["classes_present"],
                    d["min_count"],
                    d["max_count"],
                    d["imbalance_ratio"],
                    d["majority_share"],
                    d["normalized_entropy"],
                )
                for split, d in dist.items()
            ],
        )
        lines.append(
            "Imbalance ratio: largest / smallest class count (1 = balanced; – when a class "
            "is absent). Normalised entropy: H(class frequencies) / ln C (Pielou's "
            "evenness, 1 = balanced)."
        )
    else:
        splits = list(dist)
        names = list(dist[splits[0]]["positive_rate"])
        lines += table(
            (
                "attribute",
                *[f"{split} positive rate" for split in splits],
                f"{splits[0]} imbalance (majority/minority)",
            ),
            [
                (
                    name,
                    *[dist[split]["positive_rate"][name] for split in splits],
                    dist[splits[0]]["imbalance_ratio"][name],
                )
                for name in names
            ],
        )
        lines.append(
            "Label cardinality (mean positive attributes per example): "
            + ", ".join(f"{split} {dist[split]['label_cardinality']:.3f}" for split in splits)
            + "."
        )
    files = s["files"]
    return lines + [
        "",
        f"Per-class table: `{files['class_distribution_csv']}`.",
        "",
        f"![class distribution]({files['class_distribution_png']})",
        "",
    ]


def _census(s: dict) -> list[str]:
    census = s["census"]
    lines = [
        "## D5. Peculiarities: census of the raw files",
        "",
        f"Every file the annotations list under `{census['root']}`, decoded in full as the "
        "loader decodes it.",
        "",
    ]
    if census["kind"] == "audio":
        lines += table(
            (
                "group",
                "files",
                "ok",
                "missing",
                "corrupt",
                "sample rates",
                "channels",
                "length (s) min / median / max",
            ),
            [
                (
                    name,
                    g["files"],
                    g["ok"],
                    g["missing"],
                    g["corrupt"],
                    g["sample_rates"],
                    g["channels"],
                    "{min:.3f} / {median:.3f} / {max:.3f}".format(**g["seconds"])
                    if g["seconds"]
                    else "–",
                )
                for name, g in census["groups"].items()
            ],
        )
    else:
        lines += table(
            (
                "group",
                "files",
                "ok",
                "missing",
                "corrupt",
                "modes",
                "distinct sizes",
                "most common sizes (W×H: count)",
            ),
            [
                (
                    name,
                    g["files"],
                    g["ok"],
                    g["missing"],
                    g["corrupt"],
                    g["modes"],
                    g["distinct_sizes"],
                    ", ".join(f"{w}×{h}: {n}" for w, h, n in g["most_common_sizes"][:3]),
                )
                for name, g in census["groups"].items()
            ],
        )
    problems = census["problems"]
    if problems:
        lines += [
            f"**{len(problems)} problem file(s)** (all in `{s['files']['census_problems_csv']}`):",
            "",
        ]
        lines += [f"- {p['problem']}: {p['detail']}" for p in problems[:MAX_LISTED]]
        lines += ["- …"] if len(problems) > MAX_LISTED else []
        lines.append("")
    else:
        lines += ["No missing or corrupt file.", ""]
    if census["unlisted"]:
        lines += [f"Files present but not listed (ignored): {_listing(census['unlisted'])}.", ""]
    return lines


def _step(step: dict) -> str:
    params = ", ".join(f"{k}={v}" for k, v in step["params"].items())
    chance = f" (p = {step['p']:g})" if "p" in step else ""
    return f"1. **{step['op']}**{chance}" + (f": {params}" if params else "")


def _preprocessing(s: dict) -> list[str]:
    p = s["pipelines"]
    lines = [
        "## D6–D7. Preprocessing",
        "",
        "Preprocessing, identical for train, val and test "
        f"(evaluation batches deterministic: {_number(p['eval_deterministic'])}); output per "
        f"example {_shape(p['output_shape'])}:",
        "",
    ]
    return lines + [_step(step) for step in p["preprocessing"]] + [""]


def _augmentation(s: dict) -> list[str]:
    augmentation = s["pipelines"]["augmentation"]
    lines = ["## D8. Augmentation", ""]
    if not augmentation["enabled"]:
        return lines + ["Augmentation: disabled (`augment.enabled=False`).", ""]
    lines += [f"Augmentation ({augmentation['applies_to']}):", ""]
    return lines + [_step(step) for step in augmentation["steps"]] + [""]


def _examples(s: dict) -> list[str]:
    rows = [
        (
            e["index"],
            e["filename"],
            e["label"],
            e["augmentation_changed"],
            f"[{e['input_min']:.3f}, {e['input_max']:.3f}]",
            e.get("denormalized_max_abs_diff"),
        )
        for e in s["examples"]
    ]
    return [
        "## D9–D10. Examples",
        "",
        f"![examples]({s['files']['examples_png']})",
        "",
        *table(
            (
                "train index",
                "file",
                "label",
                "changed by the augmentation draw",
                "model input range",
                "de-normalised vs augmented (max |Δ|, uint8)",
            ),
            rows,
        ),
    ]


def _batch(s: dict) -> list[str]:
    b = s["batch"]
    rows = [
        ("x", _shape(b["x_shape"]), b["x_dtype"], _shape(b["expected_x_shape"]), b["x_matches"]),
        ("y", _shape(b["y_shape"]), b["y_dtype"], _shape(b["expected_y_shape"]), b["y_matches"]),
        (
            "logits",
            _shape(b["logits_shape"]),
            "",
            _shape([b["x_shape"][0], s["card"]["num_classes"]]),
            b["logits_match"],
        ),
    ]
    lines = [
        "## D11. One training batch",
        "",
        *table(("", "shape", "dtype", "expected", "matches"), rows),
    ]
    if not b["x_matches"]:
        lines += [
            "The batch's example shape differs from the task's model input shape (meta); "
            "the model still maps it to the logits above.",
            "",
        ]
    return lines


def _baselines(s: dict) -> list[str]:
    b = s["baselines"]
    majority, expected, simulated = b["majority"], b["random"]["expected"], b["random"]["simulated"]
    eval_splits = list(expected)
    first_simulation = next(iter(simulated.values()))
    lines = ["## M0. Baselines", ""]
    if s["card"]["task_type"] == "multiclass":
        rows = []
        for split in eval_splits:
            rows.append(
                (
                    f"majority class ({majority['class']})",
                    split,
                    majority[split]["accuracy"],
                    majority[split]["macro_f1"],
                )
            )
        for split in eval_splits:
            rows.append(
                (
                    "uniform random, expected (exact)",
                    split,
                    expected[split]["accuracy"],
                    expected[split]["macro_f1"],
                )
            )
        for split in eval_splits:
            sim = simulated[split]
            rows.append(
                (
                    f"uniform random, simulated ({sim['draws']} draws, seed {sim['seed']})",
                    split,
                    f"{sim['accuracy']:.4f} ± {sim['accuracy_std']:.4f}",
                    f"{sim['macro_f1']:.4f} ± {sim['macro_f1_std']:.4f}",
                )
            )
        lines += table(("baseline", "split", "accuracy", "macro-F1"), rows)
        tie = (
            (
                f" ({majority['tied_classes']} classes tie for the largest train count; the first "
                "by label is used)"
            )
            if majority["tied_classes"] > 1
            else ""
        )
        lines.append(
            f"Majority class from train: {majority['class']}, "
            f"{majority['train_share']:.4f} of train{tie}."
        )
    else:
        rows = []
        for split in eval_splits:
            rows.append(
                (
                    "per-attribute majority",
                    split,
                    majority[split]["mean_accuracy"],
                    majority[split]["micro_f1"],
                    majority[split]["macro_f1"],
                )
            )
        for split in eval_splits:
            rows.append(
                (
                    "random p = 0.5, expected (exact)",
                    split,
                    expected[split]["mean_accuracy"],
                    expected[split]["micro_f1"],
                    expected[split]["macro_f1"],
                )
            )
        for split in eval_splits:
            sim = simulated[split]
            rows.append(
                (
                    f"random p = 0.5, simulated ({sim['draws']} draws, seed {sim['seed']})",
                    split,
                    f"{sim['mean_accuracy']:.4f} ± {sim['mean_accuracy_std']:.4f}",
                    f"{sim['micro_f1']:.4f} ± {sim['micro_f1_std']:.4f}",
                    f"{sim['macro_f1']:.4f} ± {sim['macro_f1_std']:.4f}",
                )
            )
        lines += table(("baseline", "split", "mean accuracy", "micro-F1", "macro-F1"), rows)
        names = list(majority["predicted_positive"])
        lines += table(
            (
                "attribute",
                "train rate",
                "majority predicts",
                *[f"{split} majority accuracy" for split in eval_splits],
            ),
            [
                (
                    n,
                    majority["train_rate"][n],
                    "positive" if majority["predicted_positive"][n] else "negative",
                    *[majority[split][f"accuracy/{n}"] for split in eval_splits],
                )
                for n in names
            ],
        )
    lines.append(
        f"Expected values are exact (binomial sums, see `analysis/baselines.py`); the "
        f"simulation ({first_simulation['draws']} seeded draws through the evaluation metrics) "
        "checks them. The majority baseline's loss (cross-entropy of the train prior) "
        + ", ".join(
            f"{split} {majority[split]['loss']:.4f}" for split in majority if split in s["splits"]
        )
        + "."
    )
    return lines + [""]


def _model(s: dict) -> list[str]:
    p = s["parameters"]
    rows = [
        (
            r["layer"],
            r["type"],
            _shape(r["output_shape"]),
            r["params"],
            ", ".join(f"{k} {_shape(v)}" for k, v in r["param_shapes"].items()),
        )
        for r in p["layers"]
    ]
    lines = [
        "## M1. Model",
        "",
        f"`{s['model']['name']}` with {s['model']['hyperparameters']}; output shapes per "
        f"example for an input of {_shape(p['input_shape'])}.",
        "",
        *table(
            ("layer", "type", "output shape", "parameters", "tensors"),
            [*rows, ("**total**", "", "", p["total"], "")],
        ),
        f"Trainable parameters: {p['total']:,}; non-trainable BatchNorm statistics: "
        f"{p['non_trainable']:,}.",
        "",
    ]
    if p["grid"]:
        keys = [k for k in p["grid"][0] if k not in ("params", "configured")]
        lines += [
            "Every combination of the grid's model hyper-parameters (`grid.model`):",
            "",
            *table(
                (*keys, "parameters", "configured"),
                [(*[r[k] for k in keys], r["params"], r["configured"]) for r in p["grid"]],
            ),
        ]
    return lines


def _first_batch(s: dict) -> list[str]:
    f = s["first_batch"]
    rows = [
        (
            r["parameter"],
            _shape(r["shape"]),
            r["param_norm"],
            r["grad_norm"],
            r["finite"],
            r["nonzero"],
        )
        for r in f["gradients"]
    ]
    verdict = "within" if f["within_tolerance"] else "**outside**"
    lines = [
        "## M2. First-batch check",
        "",
        f"Initial loss {f['loss']:.4f} against {f['chance_formula']} = "
        f"{f['chance_loss']:.4f} (relative gap {f['relative_gap']:.3f}, {verdict} "
        f"{f['tolerance']:.0%}); batch {_shape(s['batch']['x_shape'])}, "
        "train-mode forward as in the first training step.",
        "",
        f"Global gradient L2 norm {f['global_grad_norm']:.4g}; all gradients finite: "
        f"{_number(f['all_finite'])}; all non-zero: {_number(f['all_nonzero'])}.",
        "",
    ]
    if f.get("loss_independent"):
        lines += [
            f"Exactly zero, as they should be: {_listing(f['loss_independent'])}. The loss does "
            "not depend on them (a random change leaves it as it was): a conv bias that a training "
            "BatchNorm's batch mean removes; jaxdl hands it to the BatchNorm's running mean "
            "instead of the activations.",
            "",
        ]
    if f["negligible"]:
        lines += [
            f"Negligible gradients (< {f['negligible_fraction']:g} of the global norm): "
            f"{_listing(f['negligible'])}. A conv bias followed by BatchNorm has an exactly "
            "zero gradient in exact arithmetic (the batch mean removes it): such a bias "
            "never learns.",
            "",
        ]
    return lines + table(("parameter", "shape", "‖θ‖", "‖∇θ‖", "finite", "non-zero"), rows)


def _mean_std(s: dict) -> list[str]:
    m = s["mean_std"]
    if m is None:
        return []
    lines = [
        "## Dataset mean and std (train split)",
        "",
        f"Over {m['examples']:,} train examples: mean {[round(v, 6) for v in m['mean']]}, "
        f"std {[round(v, 6) for v in m['std']]}.",
    ]
    if m["config_mean"] is not None:
        lines.append(
            f"Configured `preprocess.mean` {m['config_mean']}, `preprocess.std` "
            f"{m['config_std']}: largest difference {m['max_abs_diff']:.4f}."
        )
    return lines + [""]


# Item -> renderer, in the course's order; `--mode=report` places each under its template section.
SECTIONS: dict[str, Callable[[dict], list[str]]] = {
    "D1": _card,
    "D2-D3": _splits,
    "D4": _distribution,
    "D5": _census,
    "D6-D7": _preprocessing,
    "D8": _augmentation,
    "D9-D10": _examples,
    "D11": _batch,
    "M0": _baselines,
    "M1": _model,
    "M2": _first_batch,
    "mean_std": _mean_std,
}


def render(summary: dict) -> str:
    """analysis.md for one analyze summary (the dict written to summary.json)."""
    lines = [
        f"# Data and model analysis: {summary['task']}",
        "",
        f"Run `{summary['run']}` (seed {summary['seed']}), {summary['seconds']:.1f} s. Every "
        "number here is also in `summary.json`.",
        "",
    ]
    for section in SECTIONS.values():
        lines += section(summary)
    return "\n".join(lines).rstrip() + "\n"
