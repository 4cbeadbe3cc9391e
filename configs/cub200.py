"""CUB-200-2011 (200 bird species, images of varying size resized to 224×224): a 3-stage CNN with
grouped convolutions.

Defaults reproduce the reference's last iteration (docs/reference-projects.md#cub-200-2011):
N=3 blocks per stage, G=4 groups, batch 32, 20 epochs, lr 5e-4, weight decay 0 (the reference's
train.py hard-coded 0).
"""

import ml_collections

from jaxdl import config as common


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    config = common.base_config(task="cub200")

    data = config.data
    data.url = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"
    # As TFDS's caltech_birds2011 checksums list this archive (tensorflow_datasets/url_checksums/
    # caltech_birds2011.txt: the same URL with `?download=1`, 1,150,585,339 bytes, which is the
    # size jaxdl checks before hashing).
    data.sha256 = "0c685df5597a8b24909f6a7c9db6d11e008733779a671760afef78feb49bf081"
    data.image_size = 224  # resized without crop (aspect distorted), as the reference
    data.split_seed = 42  # the official train split is cut 80/20, stratified by class
    data.val_fraction = 0.2
    data.synthetic = ml_collections.ConfigDict(
        dict(num_classes=20, train_per_class=10, test_per_class=5, seed=0)
    )

    # Dataset statistics the reference computed on 1000 train images (`analyze` recomputes them).
    config.preprocess = ml_collections.ConfigDict(
        dict(mean=(0.48185426, 0.50031734, 0.42832923), std=(0.2270571, 0.2226704, 0.26213554))
    )
    config.augment = ml_collections.ConfigDict(
        dict(
            enabled=True,
            flip_p=0.5,
            crop_padding=0,
            brightness=0.05,
            contrast=0.05,
            saturation=0.0,
            hue=0.0,
            rotation_degrees=0.0,
        )
    )

    config.model = ml_collections.ConfigDict(
        dict(name="cub200_grouped", num_blocks=3, groups=4, init="flax", dtype="float32")
    )

    train = config.train
    train.batch_size = 32
    train.epochs = 20
    train.lr = 5e-4
    train.weight_decay = 0.0
    train.best_metric = "accuracy"

    # Reference (docs/reference-projects.md#cub-200-2011): LR finder 1e-7 -> 1e-1, 100 steps,
    # EMA-smoothed loss (beta 0.98), batch 32; grid lr {5e-4, 1e-3, 2e-3} x wd {0, 1e-4} x blocks
    # x groups, 3 epochs.
    config.lr_finder.update(dict(start=1e-7, end=1e-1, steps=100, smoothing=0.98))
    config.grid.update(dict(lr=(5e-4, 1e-3, 2e-3), weight_decay=(0.0, 1e-4), epochs=3))
    config.grid.model = ml_collections.ConfigDict(dict(num_blocks=(2, 3), groups=(2, 4)))
    # M7 of the reference (comparison_training): lr 1e-3, wd 1e-4, N = 2, G = 2.
    config.compare.update(dict(lr=(1e-3,), weight_decay=(1e-4,)))
    config.compare.model = ml_collections.ConfigDict(dict(num_blocks=(2,), groups=(2,)))

    if preset == "synthetic":
        # A CPU-sized demo: at 224×224 the model costs ~50 GFLOP per image forward, minutes per
        # step on 2 CPU cores; the demo runs the same model on 64×64 images.
        config.data.image_size = 64
        config.train.epochs = 3
    return common.apply_preset(config, preset)
