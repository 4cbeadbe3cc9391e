"""Test helpers for the image tasks: configs with a test-local cache, and format conversions."""

import json
import pathlib

import ml_collections
import pyarrow as pa
import pyarrow.parquet as pq

from jaxdl.data import tiny_imagenet

_DATA_DEFAULTS = {
    "tiny_imagenet": dict(
        image_size=64,
        format="auto",
        split_seed=42,
        test_per_class=1,
        val_per_class=2,
        synthetic=dict(num_classes=4, train_per_class=3, val_per_class=4, seed=0),
    ),
    "cub200": dict(
        image_size=32,
        split_seed=42,
        val_fraction=0.2,
        synthetic=dict(num_classes=4, train_per_class=5, test_per_class=2, seed=0),
    ),
    "celeba": dict(
        image_size=64,
        attributes=("Smiling", "Wearing_Hat", "Male", "Young", "Eyeglasses"),
        synthetic=dict(num_images=30, seed=0),
    ),
}


def image_config(task: str, tmp_path: pathlib.Path, **data) -> ml_collections.ConfigDict:
    """The data keys the task's loader reads, small synthetic defaults, cache under tmp_path."""
    config = ml_collections.ConfigDict()
    config.task = task
    config.seed = 42
    config.data = ml_collections.ConfigDict(
        dict(
            source="synthetic",
            dir="",
            cache_dir=str(tmp_path / "cache"),
            on_corrupt="error",
            workers=0,
            **_DATA_DEFAULTS[task],
        )
    )
    config.data.update(data)
    return config


def write_tiny_imagenet_parquet(
    folder: pathlib.Path,
    out: pathlib.Path,
    *,
    hf_metadata: bool = True,
    wnid_order: list[str] | None = None,
) -> pathlib.Path:
    """The Hugging Face export of an official-layout folder:
    out/data/{train,valid}-00000-of-00001.parquet.

    Columns image = {bytes, path} (path = file base name) and label = index into `wnid_order`
    (default: sorted wnids), recorded as ClassLabel names in the schema metadata when hf_metadata.
    """
    dataset = tiny_imagenet.read_folder(folder)
    names = wnid_order or list(dataset.wnids)
    (out / "data").mkdir(parents=True, exist_ok=True)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    metadata = {
        "info": {
            "features": {
                "image": {"_type": "Image"},
                "label": {"names": names, "_type": "ClassLabel"},
            }
        }
    }
    for prefix, listing in (("train", dataset.train), ("valid", dataset.official_val)):
        images = [
            {"bytes": listing.images.read(i).read_bytes(), "path": listing.filenames[i]}
            for i in range(len(listing.filenames))
        ]
        labels = [names.index(dataset.wnids[label]) for label in listing.labels]
        table = pa.table(
            {"image": pa.array(images, image_type), "label": pa.array(labels, pa.int64())}
        )
        if hf_metadata:
            table = table.replace_schema_metadata({"huggingface": json.dumps(metadata)})
        pq.write_table(table, out / "data" / f"{prefix}-00000-of-00001.parquet")
    return out
