"""CelebA aligned faces, 5 binary attributes (multi-label); a 3-block CNN with a sigmoid head
(the reference's `CNNMultiLabel`), on the official partitions."""

import ml_collections

from jaxdl.checks import check
from jaxdl.data import celeba
from jaxdl.data.image_dataset import ImageFiles
from jaxdl.models.celeba_net import CelebaCNN
from jaxdl.tasks import images
from jaxdl.tasks.spec import DatasetCard, RawFiles

CARD = DatasetCard(
    "CelebA, aligned and cropped faces",
    "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
    "178×218 JPEG in img_align_celeba/; list_attr_celeba.txt (40 attributes, -1/1), "
    "list_eval_partition.txt (0 train, 1 valid, 2 test)",
)


def validate_data(config: ml_collections.ConfigDict) -> None:
    images.validate(config)
    attributes = tuple(config.data.attributes)
    check(
        bool(attributes)
        and len(set(attributes)) == len(attributes)
        and all(isinstance(a, str) for a in attributes),
        "data.attributes",
        attributes,
        "a non-empty list of distinct CelebA attribute names",
    )


def split_protocol(config: ml_collections.ConfigDict) -> str:
    del config
    return "the official partitions of list_eval_partition.txt (0 → train, 1 → val, 2 → test)"


def raw_files(config: ml_collections.ConfigDict) -> RawFiles:
    root = celeba.resolve_data_dir(config)
    _, filenames, _ = celeba.read_attributes(celeba.annotation_path(root, celeba.ATTRIBUTES_FILE))
    partition = celeba.read_partition(
        celeba.annotation_path(root, celeba.PARTITION_FILE), filenames
    )
    groups = []
    for split, code in celeba.PARTITIONS.items():
        names = [f for f, p in zip(filenames, partition, strict=True) if p == code]
        groups.append(
            images.images_group(split, ImageFiles(root / celeba.IMAGE_FOLDER, names), names)
        )
    return RawFiles("image", root, groups, [])


TASK = images.image_task(
    name="celeba",
    card=CARD,
    source=celeba.SOURCE,
    objective_kind="multilabel",
    num_classes=5,
    model_name="celeba_cnn",
    model=CelebaCNN,
    load_split=celeba.load_split,
    validate_data=validate_data,
    split_protocol=split_protocol,
    raw_files=raw_files,
)
