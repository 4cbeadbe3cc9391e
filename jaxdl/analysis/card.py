"""D1–D3: the dataset card (origin, raw format, task, shapes, classes) and how the splits are made."""

import dataclasses

import ml_collections

from jaxdl.data.tasks import TaskData


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    name: str
    homepage: str
    raw_format: str  # the official layout, as documented (the census measures the files)


DATASETS = {
    "esc50": DatasetInfo(
        "ESC-50 (environmental sound classification)", "https://github.com/karoldvl/ESC-50",
        "WAV clips of 5 s, 44.1 kHz mono, in audio/; meta/esc50.csv lists filename, fold (1–5), "
        "target, category"),
    "tiny_imagenet": DatasetInfo(
        "Tiny ImageNet", "http://cs231n.stanford.edu/tiny-imagenet-200.zip (also Hugging Face "
        "zh-plus/tiny-imagenet)",
        "64×64 JPEG: train/<wnid>/images/*.JPEG, val/images/*.JPEG with val/val_annotations.txt; "
        "or parquet files (image bytes, label) of the Hugging Face export"),
    "cub200": DatasetInfo(
        "CUB-200-2011 (Caltech-UCSD Birds)", "https://www.vision.caltech.edu/datasets/cub_200_2011/",
        "JPEG of varying size in images/<class>/; images.txt, image_class_labels.txt, "
        "train_test_split.txt, classes.txt"),
    "celeba": DatasetInfo(
        "CelebA, aligned and cropped faces", "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
        "178×218 JPEG in img_align_celeba/; list_attr_celeba.txt (40 attributes, -1/1), "
        "list_eval_partition.txt (0 train, 1 valid, 2 test)"),
}


def split_protocol(config: ml_collections.ConfigDict) -> str:
    """How train/val/test are made from the official files, with the configured values (D3)."""
    data = config.data
    if config.task == "esc50":
        return (f"official folds, no randomness: train = folds {list(data.train_folds)}, "
                f"val = folds {list(data.val_folds)}, test = folds {list(data.test_folds)}")
    if config.task == "tiny_imagenet":
        return (f"train = the official train split; the official val split is cut per class "
                f"with a seeded shuffle (data.split_seed={data.split_seed}): the first "
                f"{data.test_per_class} images of each class → test, the next "
                f"{data.val_per_class} → val")
    if config.task == "cub200":
        return (f"the official train images are split {1 - data.val_fraction:.0%}/"
                f"{data.val_fraction:.0%} train/val, stratified by class (data.split_seed="
                f"{data.split_seed}, Hugging Face train_test_split allocation); test = the "
                "official test images")
    return "the official partitions of list_eval_partition.txt (0 → train, 1 → val, 2 → test)"


def _source(config: ml_collections.ConfigDict) -> str:
    if config.data.source == "synthetic":
        return (f"generated stand-in in the official layout (data.source=synthetic, "
                f"{config.data.synthetic.to_dict()})")
    if config.data.dir:
        return f"local folder (data.dir={config.data.dir})"
    return f"official archive {config.data.get('url', '')}, downloaded into the cache"


def dataset_card(config: ml_collections.ConfigDict, task: TaskData, class_names: tuple[str, ...],
                 data_dir: str) -> dict:
    """The card's fields; `class_names` come from the data, `task.num_classes` is the real count."""
    info = DATASETS[config.task]
    multilabel = task.objective_kind == "multilabel"
    return {
        "dataset": info.name,
        "homepage": info.homepage,
        "raw_format": info.raw_format,
        "source": _source(config),
        "data_dir": data_dir,
        "task_type": task.objective_kind,
        "objective": "sigmoid binary cross-entropy per attribute" if multilabel
                     else "softmax cross-entropy",
        "num_classes": len(class_names),
        "real_num_classes": task.num_classes,
        "class_names": list(class_names),
        "input_shape": list(task.input_shape(config)),
        "split_protocol": split_protocol(config),
    }
