"""`--mode=analyze` (course items D1–D11, M0, M1–M2): what a report must say about the data and the
untrained model, computed, not written by hand (`analysis/summary.py`: the outputs written into
`logs/<run>/`, and every key of `summary.json`, which `--mode=report` reads).

The JSON line holds the headline figures: split sizes, majority and random baselines on val and
test, the initial loss against chance, the first batch's gradient norm and the parameter count.
"""

import pathlib

import ml_collections

from jaxdl.analysis import summary


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path, args) -> dict:
    del args  # analyze takes everything from the config
    return summary.headline(summary.analyze(config, workdir))
