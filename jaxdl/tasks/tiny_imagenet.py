"""Tiny ImageNet: 64×64 RGB, 200 classes; an Inception-like multi-branch CNN (the reference's
`InceptionTinyNet`). Test and val are cut from the official val split, which has labels."""

import ml_collections

from jaxdl.checks import check_choice, check_range
from jaxdl.data import tiny_imagenet
from jaxdl.models.tiny_imagenet_net import TinyImageNetInception
from jaxdl.tasks import images
from jaxdl.tasks.spec import DatasetCard, RawFiles

CARD = DatasetCard(
    "Tiny ImageNet",
    "http://cs231n.stanford.edu/tiny-imagenet-200.zip (also Hugging Face zh-plus/tiny-imagenet)",
    "64×64 JPEG: train/<wnid>/images/*.JPEG, val/images/*.JPEG with val/val_annotations.txt; "
    "or parquet files (image bytes, label) of the Hugging Face export",
)


def validate_data(config: ml_collections.ConfigDict) -> None:
    images.validate(config)
    check_choice(config, "data.format", ("auto", "folder", "parquet"))
    check_range(config, "data.test_per_class", 1)
    check_range(config, "data.val_per_class", 1)


def split_protocol(config: ml_collections.ConfigDict) -> str:
    data = config.data
    return (
        f"train = the official train split; the official val split is cut per class "
        f"with a seeded shuffle (data.split_seed={data.split_seed}): the first "
        f"{data.test_per_class} images of each class → test, the next "
        f"{data.val_per_class} → val"
    )


def raw_files(config: ml_collections.ConfigDict) -> RawFiles:
    root = tiny_imagenet.resolve_data_dir(config)
    dataset = tiny_imagenet.read_dataset(root, config.data.format)
    return RawFiles(
        "image",
        root,
        [
            images.images_group("train", dataset.train.images, dataset.train.filenames),
            images.images_group(
                "official val (→ val, test)",
                dataset.official_val.images,
                dataset.official_val.filenames,
            ),
        ],
        [],
    )


TASK = images.image_task(
    name="tiny_imagenet",
    card=CARD,
    source=tiny_imagenet.SOURCE,
    objective_kind="multiclass",
    num_classes=200,
    model_name="tiny_imagenet_inception",
    model=TinyImageNetInception,
    load_split=tiny_imagenet.load_split,
    validate_data=validate_data,
    split_protocol=split_protocol,
    raw_files=raw_files,
)
