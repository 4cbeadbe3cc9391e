"""Template §1 (data, D1–D11) and §2 (model, M0–M2), from the latest `--mode=analyze` run.

The items are `analysis.md`'s own renderers (`analysis.markdown.SECTIONS`), placed under the
template's sub-sections, with their `## D4. …` headings turned into the template's `**D4.** …`
and their figures copied next to the report."""

import json
import re

from jaxdl.analysis import markdown
from jaxdl.report.context import Context, Section, not_run, todo, value

_HEADING = re.compile(r"^## (?:(?P<item>[DM]\d+(?:–[DM]?\d+)?)\. )?(?P<title>.*)$")


class _Analysis:
    """One analyze run's summary.json, its items rendered for the report."""

    def __init__(self, ctx: Context):
        self.run = ctx.runs.latest("analyze")
        self.summary = None
        self.links = {}
        if self.run is not None:
            self.summary = json.loads((self.run.path / "summary.json").read_text())
            self.links = {
                name: ctx.figures.copy(self.run.path / name, f"analyze_{name}")
                for name in self.summary["files"].values()
                if name.endswith(".png")
            }

    def item(self, key: str) -> list[str]:
        """An analysis.md item with the template's heading style and the copied figures."""
        lines = []
        for line in markdown.SECTIONS[key](self.summary):
            match = _HEADING.match(line)
            if match:
                line = (
                    f"**{match['item']}.** {match['title']}"
                    if match["item"]
                    else f"**{match['title']}**"
                )
            for name, link in self.links.items():
                line = line.replace(f"]({name})", f"]({link})")
            lines.append(line)
        return lines


def _split_table(summary: dict) -> list[str]:
    """The template's split table: exact sizes and what is peculiar about each split."""
    distribution = summary["distribution"]
    rows = []
    for split, size in summary["splits"].items():
        d = distribution[split]
        if summary["card"]["task_type"] == "multiclass":
            note = (
                f"{d['classes_present']}/{d['classes']} classes present, {d['min_count']}–"
                f"{d['max_count']} examples per class (imbalance ratio "
                f"{value(d['imbalance_ratio'])})"
            )
        else:
            rates = d["positive_rate"].values()
            note = (
                f"positive rate {min(rates):.4f}–{max(rates):.4f} per attribute, "
                f"{d['label_cardinality']:.3f} positive attributes per example"
            )
        rows.append((split.capitalize(), size, note))
    return markdown.table(("Split", "#Examples", "Particularities"), rows)


def _data(ctx: Context, analysis: _Analysis) -> Section:
    """§1: dataset card, splits and distribution, census, pipelines, examples, one batch."""
    title = "1) Data"
    if analysis.summary is None:
        return Section(
            title,
            not_run(
                "the dataset card, split sizes, class distribution, census, "
                "pipelines, examples and batch check (D1–D11)",
                ctx.command("analyze"),
            ),
            missing=True,
        )
    s = analysis.summary
    card = s["card"]
    lines = [
        f"Run `{ctx.logs_name(analysis.run.path)}` (`--mode=analyze`, seed {s['seed']}).",
        "",
        "### 1.1 Dataset description",
        "",
        f"- **Source**: {card['homepage']} — here: {card['source']}",
        f"- **Input type**: {s['census']['kind']} ({card['raw_format']})",
        f"- **Task**: {card['task_type']} ({card['objective']})",
        f'- **Expected input shape** (`meta["input_shape"]`): {value(card["input_shape"])}',
        f'- **Number of classes** (`meta["num_classes"]`): {card["num_classes"]}',
        "",
        *analysis.item("D1"),
        "### 1.2 Splits and statistics",
        "",
        *_split_table(s),
        *analysis.item("D2-D3"),
        *analysis.item("D4"),
        *todo("D4: in 2–3 lines, the distribution's likely impact on training."),
        *analysis.item("D5"),
        *todo("D5: any other peculiarity worth noting (sizes, lengths, multi-label, …)."),
        "### 1.3 Preprocessing (train/val/test)",
        "",
        *analysis.item("D6-D7"),
        *analysis.item("mean_std"),
        *todo("D6: why these preprocessing operations and parameters."),
        "### 1.4 Data augmentation (train only)",
        "",
        *analysis.item("D8"),
        *todo("D8: why these augmentations and parameters."),
        "**D9.** Are the augmentations label-preserving?",
        "",
        *todo("D9: for each augmentation kept, why it preserves the label."),
        "### 1.5 Sanity checks",
        "",
        *analysis.item("D9-D10"),
        *todo("D10: a short comment on the examples."),
        *analysis.item("D11"),
    ]
    return Section(title, lines)


def _model(ctx: Context, analysis: _Analysis) -> Section:
    """§2: baselines (M0), architecture and parameters (M1), initial loss (M2)."""
    title = "2) Model"
    if analysis.summary is None:
        return Section(
            title,
            not_run(
                "the baselines, parameter counts and first-batch check (M0–M2)",
                ctx.command("analyze"),
            ),
            missing=True,
        )
    s = analysis.summary
    hyperparameters = ", ".join(
        f"`{k}` = {value(v)}" for k, v in s["model"]["hyperparameters"].items()
    )
    lines = [
        "### 2.1 Baselines",
        "",
        *analysis.item("M0"),
        *todo("M0: in 2 lines, what these baselines imply."),
        "### 2.2 Architecture",
        "",
        f"- **Model**: `{s['model']['name']}` with {hyperparameters}",
        f"- **Loss function**: {s['card']['objective']}",
        f"- **Model output**: {value(s['batch']['logits_shape'])} for a batch of "
        f"{s['batch']['x_shape'][0]}",
        f"- **Total number of parameters**: {s['parameters']['total']:,}",
        "",
        *analysis.item("M1"),
        *todo(
            "M1: the architecture in words, and the role of the two model "
            f"hyper-parameters ({', '.join(s['model']['hyperparameters'])})."
        ),
        "### 2.3 Initial loss and first batch",
        "",
        *analysis.item("M2"),
    ]
    return Section(title, lines)


def sections(ctx: Context) -> list[Section]:
    """§1 and §2, from one read of the latest analyze run."""
    analysis = _Analysis(ctx)
    return [_data(ctx, analysis), _model(ctx, analysis)]
