"""Generated stand-ins for Tiny ImageNet, CUB-200-2011 and CelebA in their official layouts.

Each generator writes real JPEG files and the official annotation files, once: the folder name
encodes the parameters, the folder is built in a temporary sibling and renamed when complete, by
one process at a time, and an existing complete folder is returned at once
(`synthetic.generated_folder`, `synthetic.generate_once`).

The images are learnable by a small CNN with global average pooling, which sees texture and colour
statistics but not position:
- classes (Tiny ImageNet, CUB) differ by mean colour (8 hues), stripe orientation (5) and stripe
  frequency (5): 200 combinations, with a random phase, colour jitter and pixel noise per image;
  stripe frequencies are in cycles per image, so they survive the resize to a fixed size;
- CelebA faces carry one visible, independent feature per default attribute: Smiling a bright
  mouth bar, Wearing_Hat a saturated band over the head, Male a bluish skin tint, Young the absence
  of dark forehead lines (old faces have them), Eyeglasses two dark rings. The other 35 attributes
  are drawn with realistic positive rates but are not visible.
"""

import colorsys
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from jaxdl.data.synthetic import generate_once, generated_folder

_LAYOUT_VERSION = 1  # part of every folder name: bump when the generated images change
_JPEG_QUALITY = 90
_HUES = 8
_ORIENTATIONS_DEG = (0.0, 36.0, 72.0, 108.0, 144.0)
_CYCLES_PER_IMAGE = (3.0, 5.0, 8.0, 12.0, 16.0)
_GREYSCALE_EVERY = 50  # one image in 50 is stored greyscale, as a few real ones are
_MAX_CLASSES = _HUES * len(_ORIENTATIONS_DEG) * len(_CYCLES_PER_IMAGE)  # 200 distinct textures

# CelebA's 40 attributes in list_attr_celeba.txt order, with approximate real positive rates (the
# five default attributes at their train-split rates, docs/reference-projects.md#celeba).
CELEBA_ATTRIBUTES = (
    ("5_o_Clock_Shadow", 0.111),
    ("Arched_Eyebrows", 0.267),
    ("Attractive", 0.513),
    ("Bags_Under_Eyes", 0.205),
    ("Bald", 0.022),
    ("Bangs", 0.152),
    ("Big_Lips", 0.241),
    ("Big_Nose", 0.234),
    ("Black_Hair", 0.239),
    ("Blond_Hair", 0.148),
    ("Blurry", 0.051),
    ("Brown_Hair", 0.205),
    ("Bushy_Eyebrows", 0.142),
    ("Chubby", 0.058),
    ("Double_Chin", 0.047),
    ("Eyeglasses", 0.0646),
    ("Goatee", 0.063),
    ("Gray_Hair", 0.042),
    ("Heavy_Makeup", 0.387),
    ("High_Cheekbones", 0.455),
    ("Male", 0.4194),
    ("Mouth_Slightly_Open", 0.483),
    ("Mustache", 0.042),
    ("Narrow_Eyes", 0.115),
    ("No_Beard", 0.835),
    ("Oval_Face", 0.284),
    ("Pale_Skin", 0.043),
    ("Pointy_Nose", 0.277),
    ("Receding_Hairline", 0.080),
    ("Rosy_Cheeks", 0.066),
    ("Sideburns", 0.057),
    ("Smiling", 0.4797),
    ("Straight_Hair", 0.208),
    ("Wavy_Hair", 0.320),
    ("Wearing_Earrings", 0.189),
    ("Wearing_Hat", 0.0494),
    ("Wearing_Lipstick", 0.472),
    ("Wearing_Necklace", 0.123),
    ("Wearing_Necktie", 0.073),
    ("Young", 0.7789),
)
CELEBA_SIZE = (218, 178)  # (H, W) of img_align_celeba


def make_synthetic_tiny_imagenet(
    root: Path,
    *,
    num_classes: int = 200,
    train_per_class: int = 10,
    val_per_class: int = 4,
    seed: int = 0,
) -> Path:
    """Writes (once) and returns a `tiny-imagenet-200/` folder: wnids.txt, words.txt,
    train/<wnid>/images/*.JPEG with <wnid>_boxes.txt, val/images/*.JPEG with val_annotations.txt.

    64x64 JPEGs, one in 50 greyscale. The wnids are random 8-digit ids, so their sorted order (the
    label order) is not the generation order.
    """
    _check_count("num_classes", num_classes, 1, _MAX_CLASSES)
    folder = generated_folder(
        root,
        f"tiny-imagenet-v{_LAYOUT_VERSION}-{num_classes}c-{train_per_class}x{val_per_class}"
        f"-seed{seed}",
        num_classes=num_classes,
        train_per_class=train_per_class,
        val_per_class=val_per_class,
        seed=seed,
    )

    def write(building: Path) -> None:
        rng = np.random.default_rng([seed, 0])
        wnids = [f"n{number:08d}" for number in rng.choice(10**8, num_classes, replace=False)]
        base = building / "tiny-imagenet-200"
        (base / "val" / "images").mkdir(parents=True)
        _write_lines(base / "wnids.txt", wnids)
        _write_lines(base / "words.txt", (f"{w}\tsynthetic class {c}" for c, w in enumerate(wnids)))
        jobs = []
        for c, wnid in enumerate(wnids):
            (base / "train" / wnid / "images").mkdir(parents=True)
            filenames = [f"{wnid}_{k}.JPEG" for k in range(train_per_class)]
            for k, filename in enumerate(filenames):
                rng = np.random.default_rng([seed, 1, c, k])
                jobs.append(
                    (
                        base / "train" / wnid / "images" / filename,
                        functools.partial(_class_image, c, (64, 64), rng),
                    )
                )
            _write_lines(
                base / "train" / wnid / f"{wnid}_boxes.txt",
                (f"{filename}\t0\t0\t63\t63" for filename in filenames),
            )
        annotations = []
        for k in range(val_per_class * num_classes):
            c = k % num_classes
            filename = f"val_{k}.JPEG"
            rng = np.random.default_rng([seed, 2, k])
            jobs.append(
                (
                    base / "val" / "images" / filename,
                    functools.partial(_class_image, c, (64, 64), rng),
                )
            )
            annotations.append(f"{filename}\t{wnids[c]}\t0\t0\t63\t63")
        _write_lines(base / "val" / "val_annotations.txt", annotations)
        _write_jpegs(jobs, _GREYSCALE_EVERY)

    generate_once(folder, "Tiny ImageNet", write)
    return folder / "tiny-imagenet-200"


def make_synthetic_cub200(
    root: Path,
    *,
    num_classes: int = 200,
    train_per_class: int = 5,
    test_per_class: int = 2,
    seed: int = 0,
) -> Path:
    """Writes (once) and returns a `CUB_200_2011/` folder: images.txt, classes.txt,
    image_class_labels.txt, train_test_split.txt and images/<NNN.Name>/*.jpg.

    Image sides vary in [150, 400] px, one image in 50 is greyscale. Each class needs at least
    5 train images for a 20 % stratified validation split to reach every class.
    """
    _check_count("num_classes", num_classes, 1, _MAX_CLASSES)
    folder = generated_folder(
        root,
        f"cub200-v{_LAYOUT_VERSION}-{num_classes}c-{train_per_class}x{test_per_class}-seed{seed}",
        num_classes=num_classes,
        train_per_class=train_per_class,
        test_per_class=test_per_class,
        seed=seed,
    )

    def write(building: Path) -> None:
        base = building / "CUB_200_2011"
        classes = [f"{c + 1:03d}.Synthetic_Bird_{c + 1}" for c in range(num_classes)]
        images, labels, is_train, jobs = [], [], [], []
        for c, class_folder in enumerate(classes):
            (base / "images" / class_folder).mkdir(parents=True)
            for k in range(train_per_class + test_per_class):
                rng = np.random.default_rng([seed, c, k])
                size = tuple(int(side) for side in rng.integers(150, 401, size=2))
                relative = f"{class_folder}/Synthetic_Bird_{c + 1}_{k:04d}.jpg"
                jobs.append(
                    (base / "images" / relative, functools.partial(_class_image, c, size, rng))
                )
                images.append(relative)
                labels.append(c + 1)
                is_train.append(int(k < train_per_class))
        _write_jpegs(jobs, _GREYSCALE_EVERY)
        ids = range(1, len(images) + 1)
        _write_lines(base / "classes.txt", (f"{c + 1} {name}" for c, name in enumerate(classes)))
        _write_lines(
            base / "images.txt", (f"{i} {path}" for i, path in zip(ids, images, strict=True))
        )
        _write_lines(
            base / "image_class_labels.txt",
            (f"{i} {label}" for i, label in zip(ids, labels, strict=True)),
        )
        _write_lines(
            base / "train_test_split.txt",
            (f"{i} {flag}" for i, flag in zip(ids, is_train, strict=True)),
        )

    generate_once(folder, "CUB-200-2011", write)
    return folder / "CUB_200_2011"


def make_synthetic_celeba(root: Path, *, num_images: int = 600, seed: int = 0) -> Path:
    """Writes (once) and returns a CelebA folder: img_align_celeba/NNNNNN.jpg (178x218),
    list_attr_celeba.txt (-1/1) and list_eval_partition.txt (contiguous ~80/10/10 train/valid/test,
    as the official partition is contiguous)."""
    _check_count("num_images", num_images, 3, 10**6 - 1)
    folder = generated_folder(
        root, f"celeba-v{_LAYOUT_VERSION}-{num_images}-seed{seed}", num_images=num_images, seed=seed
    )

    def write(building: Path) -> None:
        names = [name for name, _ in CELEBA_ATTRIBUTES]
        rates = np.array([rate for _, rate in CELEBA_ATTRIBUTES])
        attributes = np.random.default_rng([seed, 0]).random((num_images, len(names))) < rates
        n_train, n_valid = round(0.8 * num_images), round(0.1 * num_images)
        partitions = np.repeat([0, 1, 2], [n_train, n_valid, num_images - n_train - n_valid])
        base = building / "celeba"
        (base / "img_align_celeba").mkdir(parents=True)
        filenames = [f"{i + 1:06d}.jpg" for i in range(num_images)]
        _write_jpegs(
            [
                (
                    base / "img_align_celeba" / filename,
                    functools.partial(
                        _face,
                        dict(zip(names, attributes[i], strict=True)),
                        np.random.default_rng([seed, 1, i]),
                    ),
                )
                for i, filename in enumerate(filenames)
            ]
        )
        rows = (
            f"{filename} " + " ".join(f"{1 if v else -1:2d}" for v in row)
            for filename, row in zip(filenames, attributes, strict=True)
        )
        _write_lines(base / "list_attr_celeba.txt", [str(num_images), " ".join(names) + " ", *rows])
        _write_lines(
            base / "list_eval_partition.txt",
            (f"{filename} {p}" for filename, p in zip(filenames, partitions, strict=True)),
        )

    generate_once(folder, "CelebA", write)
    return folder / "celeba"


def _check_count(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be in {low}..{high}, got {value}")


def _write_lines(path: Path, lines) -> None:
    path.write_text("".join(f"{line}\n" for line in lines))


def _write_jpegs(
    jobs: list[tuple[Path, Callable[[], np.ndarray]]], greyscale_every: int = 0
) -> None:
    """Draws and saves each (path, draw) job on all cores.

    With `greyscale_every` = n, jobs 7, n + 7, 2n + 7, … are stored greyscale (starting at 7 so a
    small test layout has one too). Each job owns its random generator, so the files do not
    depend on the thread schedule.
    """

    def write(index: int) -> None:
        path, draw = jobs[index]
        img = Image.fromarray(draw())
        if greyscale_every and index % greyscale_every == 7:
            img = img.convert("L")
        img.save(path, "JPEG", quality=_JPEG_QUALITY)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(write, range(len(jobs))))


def _class_image(label: int, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """uint8 (H, W, 3): class `label`'s hue, stripe orientation and frequency, random phase and
    noise."""
    height, width = size
    hue = (label % _HUES + rng.uniform(-0.15, 0.15)) / _HUES
    colour = (
        np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.5, 0.8), rng.uniform(0.5, 0.8)), np.float32)
        * 255
    )
    angle = np.deg2rad(
        _ORIENTATIONS_DEG[(label // _HUES) % len(_ORIENTATIONS_DEG)] + rng.uniform(-6, 6)
    )
    cycles = _CYCLES_PER_IMAGE[label // (_HUES * len(_ORIENTATIONS_DEG))] * rng.uniform(0.9, 1.1)
    # float32 throughout: this is most of the generation time.
    y = np.linspace(0.0, 2 * np.pi * cycles * np.sin(angle), height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 2 * np.pi * cycles * np.cos(angle), width, dtype=np.float32)[None, :]
    luminance = np.sin(x + y + np.float32(rng.uniform(0, 2 * np.pi)))
    luminance *= np.float32(rng.uniform(35, 60))
    luminance += rng.standard_normal((height, width), dtype=np.float32) * np.float32(12)
    pixels = luminance[..., None] + colour
    return np.clip(pixels, 0, 255, out=pixels).astype(np.uint8)


def _face(attributes: dict[str, bool], rng: np.random.Generator) -> np.ndarray:
    """uint8 (218, 178, 3) face: an ellipse on a random background with the attributes' features."""
    height, width = CELEBA_SIZE
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = width / 2 + rng.uniform(-6, 6), 118 + rng.uniform(-6, 6)
    img = np.empty((height, width, 3), np.float32)
    img[:] = rng.uniform(40, 215, 3)
    skin = np.array((205, 170, 150) if not attributes["Male"] else (150, 160, 200), np.float32)
    face = ((x - cx) / 58) ** 2 + ((y - cy) / 76) ** 2 <= 1
    img[face] = skin * rng.uniform(0.85, 1.1)
    if not attributes["Young"]:  # forehead lines
        for dy in (-54, -42, -30):  # 5 px thick: still visible after the resize to 64x64
            img[(np.abs(y - cy - dy) < 2.5) & (np.abs(x - cx) < 30)] = (70, 50, 40)
    if attributes["Eyeglasses"]:
        for dx in (-22, 22):
            ring = np.hypot(x - cx - dx, y - cy + 12)
            img[(ring > 10) & (ring < 16)] = (15, 15, 15)
    if attributes["Smiling"]:
        img[(np.abs(y - cy - 40) < 5) & (np.abs(x - cx) < 26)] = (250, 250, 245)
    if attributes["Wearing_Hat"]:
        hat_colour = np.array(colorsys.hsv_to_rgb(rng.random(), 0.9, 0.8), np.float32) * 255
        img[(y < cy - 58) & (y > cy - 100) & (np.abs(x - cx) < 70)] = hat_colour
    img += rng.normal(0, 8, (height, width, 1)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)
