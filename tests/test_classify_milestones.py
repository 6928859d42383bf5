"""The ILSVRC milestones of the survey's figure (AlexNet, VGG-16, GoogLeNet, Inception-v4) train from scratch on the
builtin digits at small sizes through `mmkit classify train`, and say their minimum input size."""

import json
import math

import pytest
from _cli import mmkit

from mmkit.engine import load_checkpoint

# the smallest side each takes (AlexNet's documented command: --img-size 64)
MILESTONES = {"alexnet": 64, "vgg16": 32, "googlenet": 16, "inception_v4": 75}


@pytest.mark.parametrize("model", sorted(MILESTONES))
def test_milestone_trains_on_digits_at_a_small_size(model, capsys, tmp_path):
    size = MILESTONES[model]
    code, out, _ = mmkit(
        capsys, "classify", "train", "--data", "digits", "--model", model, "--img-size", size, "--epochs", "1",
        "--max-steps", "2", "--batch-size", "8", "--optimizer", "sgd", "--lr", "1e-3", "--val-split", "0.05",
        "--device", "cpu", "--project", tmp_path, "--name", model, "--json",
    )  # fmt: skip
    assert code == 0
    fit = json.loads(out.strip().splitlines()[-1])
    assert math.isfinite(fit["metrics"]["train/loss"]) and math.isfinite(fit["metrics"]["val/loss"])
    meta = load_checkpoint(tmp_path / "classify" / model / "best.pt")["meta"]
    assert (meta["model"], meta["img_size"], meta["in_chans"], meta["num_classes"]) == (model, size, 1, 10)


def test_too_small_an_input_is_one_line_naming_the_minimum(capsys, tmp_path):
    code, _, err = mmkit(
        capsys, "classify", "train", "--data", "digits", "--model", "googlenet", "--img-size", "14",
        "--epochs", "1", "--max-steps", "1", "--device", "cpu", "--project", tmp_path,
    )  # fmt: skip
    assert code == 2
    assert "googlenet: input 14x14 is too small; it needs at least 15x15" in err and "Traceback" not in err
