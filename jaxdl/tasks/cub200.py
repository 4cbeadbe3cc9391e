"""CUB-200-2011: RGB birds of varying size, 200 species; a 3-stage CNN with grouped convolutions
(the reference's Projet 22). Val is a stratified cut of the official train images."""

import ml_collections

from jaxdl.checks import check_range
from jaxdl.data import cub200
from jaxdl.data.image_dataset import ImageFiles
from jaxdl.models.cub200_net import Cub200GroupedCNN
from jaxdl.tasks import images
from jaxdl.tasks.spec import DatasetCard, RawFiles

CARD = DatasetCard(
    "CUB-200-2011 (Caltech-UCSD Birds)",
    "https://www.vision.caltech.edu/datasets/cub_200_2011/",
    "JPEG of varying size in images/<class>/; images.txt, image_class_labels.txt, "
    "train_test_split.txt, classes.txt",
)


def validate_data(config: ml_collections.ConfigDict) -> None:
    images.validate(config)
    check_range(config, "data.val_fraction", 0.0, 1.0, low_inclusive=False)


def split_protocol(config: ml_collections.ConfigDict) -> str:
    data = config.data
    return (
        f"the official train images are split {1 - data.val_fraction:.0%}/"
        f"{data.val_fraction:.0%} train/val, stratified by class (data.split_seed="
        f"{data.split_seed}, Hugging Face train_test_split allocation); test = the "
        "official test images"
    )


def raw_files(config: ml_collections.ConfigDict) -> RawFiles:
    root = cub200.resolve_data_dir(config)
    dataset = cub200.read_dataset(root)
    groups = []
    for name, chosen in (
        ("official train (→ train, val)", dataset.is_train),
        ("test", ~dataset.is_train),
    ):
        paths = [p for p, keep in zip(dataset.paths, chosen, strict=True) if keep]
        groups.append(images.images_group(name, ImageFiles(root / "images", paths), paths))
    return RawFiles("image", root, groups, [])


TASK = images.image_task(
    name="cub200",
    card=CARD,
    source=cub200.SOURCE,
    objective_kind="multiclass",
    num_classes=200,
    model_name="cub200_grouped",
    model=Cub200GroupedCNN,
    load_split=cub200.load_split,
    validate_data=validate_data,
    split_protocol=split_protocol,
    raw_files=raw_files,
)
