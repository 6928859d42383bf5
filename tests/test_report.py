"""Plots write real PNGs; the HTML report is self-contained, escaped and written atomically."""

import base64
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmkit.errors import MMKitError
from mmkit.report import (
    Section,
    plot_confusion_matrix,
    plot_curves,
    plot_predictions,
    save_image_grid,
    write_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _open_png(path: Path) -> Image.Image:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    img = Image.open(path)
    img.load()
    assert img.format == "PNG"
    return img


def _no_temp_files(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


def _write_metrics_csv(path: Path) -> Path:
    lines = ["epoch,train/loss,val/loss,val/top1,val/top5,lr,time"]
    for e in range(1, 9):
        val = f"{1.5 / e:.4f},{50 + 5 * e},{80 + 2 * e}" if e % 2 == 0 else ",,"  # val every other epoch
        lines.append(f"{e},{2.0 / e:.4f},{val},{0.1 * 0.5**e:.6f},{12.5 + e % 3}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_plot_curves_from_csv_with_blank_cells(tmp_path):
    csv_path = _write_metrics_csv(tmp_path / "metrics.csv")
    out = plot_curves(csv_path, tmp_path / "plots" / "curves.png")
    img = _open_png(out)
    # four groups (losses, val, lr, time) in a 2x2 grid: wider than tall-ish, and big enough to read
    assert img.width >= 1000 and img.height >= 700
    assert _no_temp_files(out.parent)


def test_plot_curves_errors_name_the_file(tmp_path):
    with pytest.raises(MMKitError, match="missing.csv"):
        plot_curves(tmp_path / "missing.csv", tmp_path / "c.png")
    empty = tmp_path / "empty.csv"
    empty.write_text("epoch,train/loss\n1,\n")
    with pytest.raises(MMKitError, match="empty.csv: no numeric"):
        plot_curves(empty, tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()


@pytest.mark.parametrize("num_classes", [3, 100])
def test_plot_confusion_matrix(tmp_path, num_classes):
    rng = np.random.default_rng(0)
    cm = rng.integers(0, 20, size=(num_classes, num_classes)) + np.eye(num_classes, dtype=np.int64) * 50
    cm[0] = 0  # an absent class must not divide by zero
    classes = [f"class_{i}" for i in range(num_classes)]
    out = plot_confusion_matrix(cm, classes, tmp_path / f"cm{num_classes}.png", normalize=num_classes > 3)
    img = _open_png(out)
    assert img.width >= 500 and img.height >= 500
    if num_classes == 100:
        assert img.width >= 1500  # grows with the class count so 100 labels stay legible
    with pytest.raises(ValueError, match="class names"):
        plot_confusion_matrix(cm, classes[:-1], tmp_path / "bad.png")


@pytest.mark.parametrize("channels,dtype", [(1, torch.uint8), (3, torch.float32)])
def test_save_image_grid(tmp_path, channels, dtype):
    n, h, w = 10, 8, 8
    if dtype == torch.uint8:
        images = torch.randint(0, 256, (n, channels, h, w), dtype=torch.uint8)
    else:
        images = torch.rand(n, channels, h, w)
    labels = [f"digit {i}" for i in range(n)]
    out = save_image_grid(images, tmp_path / "grid.png", labels=labels, nrow=4, title="Samples")
    img = _open_png(out)
    # 4 columns of upscaled (>= 64 px) cells, 3 rows with label bands
    assert img.width >= 4 * 64 and img.height >= 3 * 64
    assert img.mode in ("RGB", "RGBA")
    px = np.asarray(img.convert("RGB"))
    assert px.std() > 10  # the images were actually drawn, not a blank page


def test_save_image_grid_rejects_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match="C in"):
        save_image_grid(torch.zeros(2, 2, 8, 8), tmp_path / "g.png")
    with pytest.raises(ValueError, match="labels"):
        save_image_grid(torch.zeros(2, 3, 8, 8), tmp_path / "g.png", labels=["a"])


def test_plot_predictions(tmp_path):
    images = [torch.rand(3, 32, 32), np.random.default_rng(0).integers(0, 255, (28, 28), dtype=np.uint8)]
    preds = [[("cat", 0.7), ("dog", 0.2), ("<b>fox</b>", 0.1)], [("seven", 0.95), ("one", 0.05)]]
    out = plot_predictions(images, preds, tmp_path / "pred.png", titles=["true: cat", "true: seven"])
    img = _open_png(out)
    assert img.width >= 500 and img.height >= 300
    assert img.width > img.height * 0.8  # one wide row per image


def _tiny_png(path: Path) -> Path:
    Image.fromarray(np.full((4, 4, 3), 200, dtype=np.uint8)).save(path)
    return path


def test_write_report_is_self_contained_and_escaped(tmp_path):
    png = _tiny_png(tmp_path / "curves.png")
    sections = [
        Section("Summary", text="First paragraph <script>alert(1)</script>\n\nSecond & last."),
        Section(
            "Metrics",
            table=(
                ["metric", "value"],
                [["top1", 87.654321], ["loss", 0.000123456], ["<i>n</i>", 12], ["x", None]],
            ),
        ),
        Section("Plots", images=[(png, "Training curves"), (tmp_path / "gone.png", "not there")]),
    ]
    out = write_report(tmp_path / "run" / "report.html", "Run <report>", sections, subtitle="classify / tiny")
    page = out.read_text(encoding="utf-8")

    assert page.startswith("<!DOCTYPE html>")
    for title in ("Summary", "Metrics", "Plots", "classify / tiny"):
        assert title in page
    assert "Run &lt;report&gt;" in page and "<report>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "alert(1)</script>" not in page
    assert page.count("<p>") == 2 and "Second &amp; last." in page
    assert "&lt;i&gt;n&lt;/i&gt;" in page
    assert ">87.65<" in page and ">0.0001235<" in page and ">12<" in page  # 4 significant digits

    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == 1 and base64.b64decode(uris[0]) == png.read_bytes()
    assert "(missing: gone.png)" in page
    assert "http://" not in page and "https://" not in page
    assert not re.search(r'(src|href)="(?!data:|#)', page)  # nothing but data URIs and in-page anchors
    assert _no_temp_files(out.parent)


def test_write_report_is_atomic_and_replaces_existing(tmp_path, monkeypatch):
    path = tmp_path / "report.html"
    path.write_text("old")
    write_report(path, "New", [Section("Only", text="hello")])
    assert "hello" in path.read_text() and _no_temp_files(tmp_path)

    class Unprintable:
        def __str__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_report(path, "Broken", [Section("T", table=(["a"], [[Unprintable()]]))])
    assert "hello" in path.read_text()  # the previous report survives a failed render

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("mmkit.report.html.os.replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_report(path, "Late failure", [Section("T", text="never lands")])
    assert "hello" in path.read_text()  # ... and a failed write
    assert _no_temp_files(tmp_path)  # the temporary file was cleaned up
