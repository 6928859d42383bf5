"""Classification transforms: shapes, dtypes, channel conversion, normalization and seeded reproducibility."""

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from mmkit.data import (
    TensorImageDataset,
    TransformedDataset,
    build_transforms,
    collate_skip_none,
    load_classification_data,
)
from mmkit.data.transforms import BatchTransform


def _digit() -> torch.Tensor:
    torch.manual_seed(123)
    return torch.randint(0, 256, (1, 8, 8), dtype=torch.uint8)


def _photo(photos, name: str = "chelsea") -> torch.Tensor:
    return torch.from_numpy(photos[name]).permute(2, 0, 1).contiguous()


def test_small_images_gray_to_rgb():
    image = _digit()
    train = build_transforms(
        True, 32, (0.3,), (0.4,), in_channels=1, out_channels=3, hflip=False, native_size=8
    )
    out = train(image)
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
    assert not any(isinstance(t, v2.RandomHorizontalFlip) for t in train.transforms)
    evaluate = build_transforms(False, 8, (0.3,), (0.4,), in_channels=1, out_channels=1, native_size=8)
    expected = (image.float() / 255 - 0.3) / 0.4
    assert torch.allclose(evaluate(image), expected, atol=1e-6)  # eval at native size: only scale + normalize


def test_small_images_random_crop_pads():
    image = torch.full((3, 32, 32), 255, dtype=torch.uint8)
    train = build_transforms(True, 32, (0.0,) * 3, (1.0,) * 3, in_channels=3, out_channels=3, native_size=32)
    torch.manual_seed(0)
    outs = torch.stack([train(image) for _ in range(20)])
    assert outs.shape == (20, 3, 32, 32)
    assert outs.min() == 0 and outs.max() == 1  # zero padding shows up for some shifts


def test_photos_train_and_eval(photos):
    image = _photo(photos)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    train = build_transforms(True, 24, mean, std, in_channels=3, out_channels=3)
    assert train(image).shape == (3, 24, 24)
    evaluate = build_transforms(False, 24, mean, std, in_channels=3, out_channels=1)
    gray = evaluate(image)
    assert gray.shape == (1, 24, 24) and gray.dtype == torch.float32
    resized = v2.CenterCrop(24)(v2.Resize(27)(image)).float() / 255
    luminance = 0.2989 * resized[0] + 0.587 * resized[1] + 0.114 * resized[2]
    expected = (luminance - (0.2989 * 0.485 + 0.587 * 0.456 + 0.114 * 0.406)) / (
        0.2989 * 0.229 + 0.587 * 0.224 + 0.114 * 0.225
    )
    assert torch.allclose(gray[0], expected, atol=1e-4)


def test_transforms_are_reproducible_under_a_seed(photos):
    image = _photo(photos, "rocket")
    train = build_transforms(True, 32, (0.5,) * 3, (0.25,) * 3, in_channels=3, out_channels=3)
    torch.manual_seed(7)
    first = [train(image) for _ in range(3)]
    torch.manual_seed(7)
    second = [train(image) for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not torch.equal(first[0], first[1])


def test_bad_normalization_length():
    with pytest.raises(ValueError, match="mean has 2 values"):
        build_transforms(False, 8, (0.1, 0.2), (0.3,), in_channels=1, out_channels=3, native_size=8)


def test_transformed_dataset_and_loader(tmp_path, photos):
    for i, name in enumerate(("chelsea", "coffee", "rocket", "astronaut")):
        (tmp_path / ("a" if i % 2 else "b")).mkdir(exist_ok=True)
        Image.fromarray(photos[name]).save(tmp_path / ("a" if i % 2 else "b") / f"{name}.jpg")
    data = load_classification_data(tmp_path, val_split=0.0)
    (tmp_path / "a" / "coffee.jpg").write_bytes(b"broken after indexing")
    transform = build_transforms(False, 16, data.mean, data.std, in_channels=3, out_channels=3)
    loader = DataLoader(TransformedDataset(data.train, transform), batch_size=4, collate_fn=collate_skip_none)
    images, labels = next(iter(loader))
    assert images.shape == (3, 3, 16, 16) and images.dtype == torch.float32 and labels.tolist() == [0, 1, 1]
    memory = TransformedDataset(
        TensorImageDataset(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 1])), transform
    )
    assert memory[1][0].shape == (3, 16, 16) and memory[1][1] == 1
    assert memory.targets == [0, 1]


def test_batch_transform_eval_equals_the_per_image_transform():
    torch.manual_seed(0)
    batch = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    for size in (8, 16):
        per_image = build_transforms(
            False, size, (0.3,), (0.4,), in_channels=1, out_channels=3, native_size=8
        )
        batched = BatchTransform(False, (0.3,), (0.4,), out_channels=3, size=size)
        expected = torch.stack([per_image(x) for x in batch])
        torch.testing.assert_close(batched(batch), expected, atol=1 / 255 / 0.4 + 1e-6, rtol=0)


def test_batch_transform_train_crops_and_flips_each_image():
    torch.manual_seed(0)
    batch = torch.arange(64, dtype=torch.uint8).view(1, 1, 8, 8).repeat(200, 1, 1, 1) + 1
    tf = BatchTransform(True, (0.0,), (1 / 255,), out_channels=1, pad=2, hflip=True)
    out = tf(batch).round()  # mean 0, std 1/255: pixel values back, zero where padding shows
    assert out.shape == (200, 1, 8, 8)
    src = batch[0, 0].float()
    kinds = set()
    for img in out[:, 0]:
        # every output is a shifted window of the padded (possibly flipped) source
        found = None
        for flipped in (False, True):
            s = src.flip(-1) if flipped else src
            padded = torch.nn.functional.pad(s, (2, 2, 2, 2))
            for dy in range(5):
                for dx in range(5):
                    if torch.equal(padded[dy : dy + 8, dx : dx + 8], img):
                        found = (flipped, dy, dx)
        assert found is not None
        kinds.add(found)
    assert len(kinds) > 20  # 2 flips x 25 offsets, drawn per image
    torch.manual_seed(0)
    torch.testing.assert_close(tf(batch).round(), out)  # seeded by torch's global RNG


def test_batch_transform_rejects_float_input():
    with pytest.raises(ValueError, match="uint8"):
        BatchTransform(False, (0.5,), (0.5,), out_channels=1)(torch.zeros(2, 1, 8, 8))
