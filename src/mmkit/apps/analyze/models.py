"""The models of `mmkit analyze`, loaded once and run on whole batches of pictures (photos, or frames of a video).

Each wraps a task's own loading and inference (`load_classifier`, MTCNN + `align_faces` + `embed` + the gallery,
`load_detector` + `predict_batch`, `load_captioner` + `decode_batch`); coordinates come back in original pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from mmkit.apps.options import ModelOptions
from mmkit.engine import select_device

TOPK = 5
CAPTION_BEAM = 3


@dataclass
class Models:
    """The models an analysis runs, loaded once; None where not asked for. `info` names them for the JSON."""

    device: torch.device
    info: dict[str, Any]
    classifier: Any = None  # (net, ClassifierMeta, eval transform)
    mtcnn: Any = None
    embedder: Any = None  # (net, FaceMeta)
    gallery: Any = None
    threshold: float | None = None
    detector: Any = None  # (net, DetectorMeta, letterbox transform)
    captioner: Any = None  # (net, CaptionMeta, Vocabulary, normalization)
    video: str | None = None
    video_device: str = "auto"

    def close(self) -> None:
        if self.gallery is not None:
            self.gallery.close()

    def inputs(self, work: Tensor) -> dict[str, Any]:
        """Each model's input made from a work image (uint8 [3, H, W]); run in the decoding threads."""
        out: dict[str, Any] = {}
        if self.classifier is not None:
            out["classify"] = self.classifier[2](work)
        if self.detector is not None:
            empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
            x, t = self.detector[2](work, empty)
            out["detect"] = (x, t["scale"], t["pad"])
        if self.captioner is not None:
            s = self.captioner[1].img_size
            out["caption"] = TF.resize(work, [s, s], antialias=True)
        return out


def load_models(options: ModelOptions | None = None, *, device: str = "auto", **fields: Any) -> Models:
    """Load the models `options` (or the ModelOptions `fields`) ask for; bad weights fail here, before any file is
    read."""
    o = options if options is not None else ModelOptions(**fields)
    classifier, detector, captioner, video = o.classifier, o.detector_to_load(), o.captioner, o.video
    dev = select_device(device)
    m = Models(dev, {"classifier": None, "faces": None, "detector": None, "captioner": None, "video": None})
    if classifier:
        from mmkit.tasks.classify import load_classifier

        named = not Path(classifier).is_file()
        net, meta = load_classifier(classifier, o.classifier_model if named else None, dev)
        m.classifier = (net, meta, meta.eval_transform(in_channels=3))
        m.info["classifier"] = {"model": meta.model, "weights": str(classifier), "classes": meta.num_classes}
    if o.faces:
        from mmkit.models.mtcnn import load_mtcnn

        m.mtcnn = load_mtcnn(device=dev)
        m.info["faces"] = {"detector": "mtcnn", "embedder": None, "gallery": None, "threshold": None}
    if o.face_db is not None:
        from mmkit.models import get_model_info
        from mmkit.tasks.face import load_embedder, match_threshold, open_gallery

        named = o.face_weights in get_model_info("facenet").weights
        net, meta, fingerprint = load_embedder(o.face_weights, "facenet" if named else None, dev)
        m.threshold = match_threshold(meta, o.face_threshold)
        m.gallery = open_gallery(o.face_db, fingerprint, meta.embedding_dim, must_exist=True)
        m.embedder = (net, meta)
        m.info["faces"].update(embedder=o.face_weights, gallery=o.face_db, threshold=m.threshold)
    if detector is not None:
        from mmkit.tasks.detect import load_detector

        net, meta = load_detector(detector, dev)
        m.detector = (net, meta, meta.eval_transform())
        m.info["detector"] = {"model": meta.model, "weights": str(detector), "classes": meta.num_classes}
    if captioner is not None:
        from mmkit.data.transforms import BatchTransform
        from mmkit.tasks.caption import load_captioner

        net, meta, vocab = load_captioner(captioner, dev)
        norm = BatchTransform(False, meta.mean, meta.std, out_channels=3).to(dev)
        m.captioner = (net, meta, vocab, norm)
        m.info["captioner"] = {"model": meta.model, "weights": str(captioner), "beam": CAPTION_BEAM}
    if video is not None:
        from mmkit.tasks.video import load_video_model

        _, meta = load_video_model(video, "cpu")  # checked now; `predict` loads it again for the videos
        m.video, m.video_device = str(video), device
        m.info["video"] = {"model": meta.model, "weights": str(video), "classes": meta.num_classes}
    return m


# ---------------------------------------------------------------------------------------------------------------------
# Running the models on a batch of pictures (photos, or frames of a video)


def topk_labels(prob: Tensor, classes: list[str], k: int = TOPK) -> list[dict[str, Any]]:
    p, idx = prob.topk(min(k, len(classes)))
    return [
        {"label": classes[j], "score": round(q, 4)} for q, j in zip(p.tolist(), idx.tolist(), strict=True)
    ]


@torch.no_grad()
def classify(m: Models, inputs: list[Tensor]) -> Tensor:
    """Class probabilities [N, C] (CPU) of the classifier's inputs."""
    net = m.classifier[0]
    return net(torch.stack(inputs).to(m.device)).float().softmax(1).cpu()


def _r(values: Tensor, scale: float) -> list:
    """Coordinates in work pixels -> original pixels, rounded to 0.1 px."""
    return [round(v, 1) for v in (values.float().cpu().reshape(-1) / scale).tolist()]


@torch.no_grad()
def find_faces(m: Models, images: list[Tensor], scales: list[float]) -> list[list[dict[str, Any]]]:
    """The faces of each image (uint8 [3, H, W], `scales[i]` times its original size), best first: box and five
    landmarks in original pixels, score, and with a gallery the name (None when unknown) and distance."""
    from mmkit.data.face_align import align_faces

    dets = m.mtcnn.detect([im.to(m.device) for im in images])
    out = [
        [
            {
                "box": _r(d.boxes[k], s),
                "score": round(float(d.scores[k]), 4),
                "landmarks": [_r(p, s) for p in d.landmarks[k]],
                "name": None,
                "distance": None,
            }
            for k in range(len(d))
        ]
        for d, s in zip(dets, scales, strict=True)
    ]
    if m.gallery is not None and any(len(d) for d in dets):
        from mmkit.tasks.face import embed

        net, meta = m.embedder
        crops = [
            align_faces(im, d.landmarks.cpu(), size=meta.img_size) for im, d in zip(images, dets, strict=True)
        ]
        matches = iter(m.gallery.identify(embed(net, meta, torch.cat(crops)), m.threshold))
        for faces in out:
            for f in faces:
                match = next(matches)
                f["name"] = match.name
                f["distance"] = round(match.distance, 4) if math.isfinite(match.distance) else None
    return out


@torch.no_grad()
def detect_objects(
    m: Models, inputs: list[tuple], scales: list[float], sizes: list[tuple[int, int]]
) -> list[list[dict[str, Any]]]:
    """Objects of each image (letterboxed work images, `scales[i]` times the original size (h, w) `sizes[i]`): box
    [x1, y1, x2, y2] in original pixels, score, class name and index."""
    from mmkit.tasks.detect.predictor import image_detections, predict_batch

    net, meta, _ = m.detector
    preds = predict_batch(net, torch.stack([x for x, _, _ in inputs]).to(m.device), conf=0.25, iou=0.45)
    return [
        image_detections(p, meta.classes, fit_scale, pad, size, s)
        for p, (_, fit_scale, pad), s, size in zip(preds, inputs, scales, sizes, strict=True)
    ]


@torch.no_grad()
def caption(m: Models, inputs: list[Tensor]) -> list[str]:
    """A caption (or paragraph) per image, by beam search."""
    from mmkit.tasks.caption import decode_batch

    net, meta, vocab, norm = m.captioner
    x = norm(torch.stack(inputs).to(m.device))
    return decode_batch(net, meta, vocab, x, beam=CAPTION_BEAM)
