"""The described pipelines carry the configured parameters and probabilities."""

from jaxdl.analysis import pipelines
from tests.helpers import load_config


def test_esc50_augmentation_as_the_reference():
    config = load_config("esc50")
    described = pipelines.describe(config, (64, 501, 1))
    steps = described["augmentation"]["steps"]
    assert [(s["op"], s["p"]) for s in steps] == [
        ("time_shift", 0.3),
        ("frequency_mask", 0.5),
        ("time_mask", 0.5),
    ]
    assert steps[0]["params"]["frames"] == "k ~ U{-25..25}"  # 0.05 x 501 frames
    stft = next(s for s in described["preprocessing"] if s["op"] == "stft")["params"]
    assert (stft["n_fft"], stft["hop_length"], stft["win_length"]) == (400, 160, 400)
    resample = next(s for s in described["preprocessing"] if s["op"] == "resample")["params"]
    assert (resample["to_hz"], resample["lowpass_filter_width"], resample["rolloff"]) == (
        16000,
        6,
        0.99,
    )


def test_image_pipelines_list_only_active_augmentations():
    config = load_config("tiny_imagenet")
    described = pipelines.describe(config, (64, 64, 3))
    steps = {s["op"]: s for s in described["augmentation"]["steps"]}
    assert list(steps) == ["horizontal_flip", "pad_and_random_crop", "color_jitter"]
    assert (
        steps["horizontal_flip"]["p"] == 0.5
        and steps["pad_and_random_crop"]["params"]["padding"] == 4
    )
    assert steps["color_jitter"]["params"]["factor_ranges"] == {
        "brightness": [0.9, 1.1],
        "contrast": [0.9, 1.1],
        "saturation": [0.9, 1.1],
        "hue": [-0.02, 0.02],
    }
    normalize = described["preprocessing"][-1]
    assert normalize["params"] == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    config.augment.enabled = False
    assert pipelines.describe(config, (64, 64, 3))["augmentation"]["steps"] == []
