"""One-factor variants of a config (`compare.run=True`): the baseline and, per listed value, a copy
that changes only that one factor, so each curve of the comparison shows one cause."""

import ml_collections

from jaxdl.training import grid


def one_factor_variants(config: ml_collections.ConfigDict) -> list[ml_collections.ConfigDict]:
    """The baseline (this config) and one variant per value of `compare.lr`, `compare.weight_decay`
    and `compare.model.<key>`, each changing that one factor, trained `compare.epochs` epochs."""
    epochs = config.compare.epochs or config.train.epochs
    changes = [{}] + [{"lr": v} for v in config.compare.lr]
    changes += [{"weight_decay": v} for v in config.compare.weight_decay]
    changes += [{key: v} for key in config.compare.model for v in config.compare.model[key]]
    variants = {}
    for change in changes:  # a value equal to the baseline's is the baseline: trained once
        variant = grid.member_config(config, epochs, **change)
        variants.setdefault(grid.member_name(variant), variant)
    return list(variants.values())
