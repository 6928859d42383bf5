"""The models a server holds: each loaded once (at start-up, or on first use), each used by one request at a time.

    hub = ModelHub(ServeConfig(detector="runs/detect/exp/best.pt"))
    hub.load_all()                       # fail at start-up, not on the first request, for bad weights
    hub.classify(pixels, topk=5)         # pixels: RGB uint8 [3, H, W]
    hub.describe()                       # what is configured and loaded, for GET /models

Inference reuses the task modules' loaders and transforms (`load_classifier`, `load_detector`, MTCNN,
`load_embedder` + the SQLite `Gallery`, `load_captioner` + `decode_batch`, `load_video_model`), so a server answer
equals what `mmkit <task> predict` prints for the same file. A lock per model keeps concurrent requests from
running one model in several threads at once (torch already spreads one call over the cores).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mmkit.apps.options import ModelOptions
from mmkit.apps.serve.uploads import DEFAULT_MAX_PIXELS, DEFAULT_WORK_PIXELS, ServeError, UploadLimits
from mmkit.engine import select_device

log = logging.getLogger(__name__)


@dataclass
class ServeConfig(ModelOptions):
    """What `mmkit serve` was told: the models (`ModelOptions`; None: that endpoint answers 409) and the limits."""

    max_upload_mb: float = 20.0
    max_pixels: int = DEFAULT_MAX_PIXELS
    work_pixels: int = (
        DEFAULT_WORK_PIXELS  # larger images are decoded reduced (coordinates answered in the image's)
    )
    body_timeout: float = 30.0  # seconds a request body may stall before 408
    device: str = "auto"
    preload: bool = True  # load every configured model in create_app (else on first use)
    host: str = "127.0.0.1"  # the address it is bound to: the Host names it answers (see guard.py)
    token: str | None = None  # the access token every API request must carry (None: none needed)
    allow_hosts: tuple[str, ...] = ()  # more Host names to answer ("*": any)

    @property
    def limits(self) -> UploadLimits:
        return UploadLimits(
            max_bytes=int(self.max_upload_mb * 2**20),
            max_pixels=int(self.max_pixels),
            work_pixels=int(self.work_pixels),
        )


# slot -> (the CLI option that configures it, the endpoints that need it)
OPTIONS: dict[str, tuple[str, str]] = {
    "classifier": ("--classifier", "/classify"),
    "detector": ("--detector", "/detect"),
    "faces": ("(MTCNN weights from facenet-pytorch)", "/faces/detect"),
    "embedder": ("--face-weights and --face-db", "/faces/identify and /faces/enroll"),
    "captioner": ("--captioner", "/caption"),
    "video": ("--video", "/video"),
}


def _shown(weights: str | None) -> str | None:
    """A weights source as /models shows it: a file's name, never where it lies on the server."""
    return Path(weights).name if weights else weights


def _none_if_inf(v: float) -> float | None:
    return None if math.isinf(v) or math.isnan(v) else round(v, 4)


def _round(t: torch.Tensor) -> list:
    return [round(float(v), 2) for v in t] if t.ndim == 1 else [_round(r) for r in t]


class ModelHub:
    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.device = select_device(config.device)
        self._loaded: dict[str, Any] = {}
        self._locks = {name: threading.Lock() for name in OPTIONS}
        self._load_lock = threading.Lock()
        self._gallery_lock = threading.Lock()
        c = config
        self._loaders: dict[str, Callable[[], Any] | None] = {
            "classifier": self._load_classifier if c.classifier else None,
            "detector": self._load_detector if c.detector_to_load() else None,
            "faces": self._load_mtcnn if c.faces else None,
            "embedder": self._load_embedder if (c.face_weights and c.face_db) else None,
            "captioner": self._load_captioner if c.captioner else None,
            "video": self._load_video if c.video else None,
        }

    # --- loading --------------------------------------------------------------------------------------------------
    def configured(self, name: str) -> bool:
        return self._loaders[name] is not None

    def load_all(self) -> None:
        for name in OPTIONS:
            if self.configured(name):
                self.require(name)

    def require(self, name: str) -> Any:
        """The model `name`, loaded now if it was not yet; `ServeError` 409 naming the option when not configured."""
        loader = self._loaders[name]
        if loader is None:
            option, endpoint = OPTIONS[name]
            raise ServeError(409, f"{endpoint}: no {name} is loaded; start the server with {option}")
        with self._load_lock:
            if name not in self._loaded:
                self._loaded[name] = loader()
                log.info("serve: %s loaded", name)
            return self._loaded[name]

    def _load_classifier(self):
        from mmkit.tasks.classify import load_classifier

        net, meta = load_classifier(self.config.classifier, self.config.classifier_model, self.device)
        return net, meta, meta.eval_transform(in_channels=3)

    def _load_detector(self):
        from mmkit.tasks.detect import load_detector

        return load_detector(self.config.detector, self.device)

    def _load_mtcnn(self):
        from mmkit.models.mtcnn import load_mtcnn

        return load_mtcnn(device=self.device)

    def _load_embedder(self):
        from mmkit.data.gallery import Gallery
        from mmkit.errors import MMKitError
        from mmkit.models import get_model_info
        from mmkit.tasks.face import load_embedder

        w = str(self.config.face_weights)
        model = "facenet" if w in get_model_info("facenet").weights else None
        net, meta, fingerprint = load_embedder(w, model, self.device)
        threshold = self.config.face_threshold if self.config.face_threshold is not None else meta.threshold
        if threshold is None:
            raise MMKitError(f"{w}: these weights carry no validated threshold; give --face-threshold")
        with Gallery(self.config.face_db, model=fingerprint, dim=meta.embedding_dim):
            pass  # created if new; a gallery of another model is refused here, at start-up
        return net, meta, fingerprint, float(threshold)

    def _load_captioner(self):
        from mmkit.data.transforms import BatchTransform
        from mmkit.tasks.caption import load_captioner

        net, meta, vocab = load_captioner(self.config.captioner, self.device)
        norm = BatchTransform(False, meta.mean, meta.std, out_channels=3).to(self.device)
        return net, meta, vocab, norm

    def _load_video(self):
        from mmkit.errors import MMKitError
        from mmkit.tasks.video import load_video_model

        net, meta = load_video_model(self.config.video, self.device)
        extractor = None
        if meta.kind == "features":
            if not meta.extractor:
                raise MMKitError(
                    f"{self.config.video}: trained on features mmkit did not extract (e.g. YouTube-8M); "
                    "serve needs a clip model or one trained on `mmkit video features` output"
                )
            from mmkit.tasks.video.features import load_extractor

            extractor = load_extractor(meta.extractor["backbone"], meta.extractor["weights"], self.device)
        return net, meta, extractor

    def describe(self) -> dict[str, Any]:
        """Per model: configured, loaded, the option that sets it, and what it is."""
        c = self.config
        source = {
            "classifier": c.classifier and f"{c.classifier_model or ''}:{_shown(c.classifier)}".lstrip(":"),
            "detector": _shown(c.detector),
            "faces": "mtcnn" if c.faces else None,
            "embedder": c.face_weights and f"{_shown(c.face_weights)} (gallery {_shown(c.face_db)})",
            "captioner": _shown(c.captioner),
            "video": _shown(c.video),
        }
        out: dict[str, Any] = {}
        for name, (option, endpoint) in OPTIONS.items():
            entry: dict[str, Any] = {
                "configured": self.configured(name),
                "loaded": name in self._loaded,
                "option": option,
                "endpoint": endpoint,
                "weights": source[name] if self.configured(name) else None,
            }
            if name in self._loaded:
                entry.update(self._details(name))
            out[name] = entry
        return out

    def _details(self, name: str) -> dict[str, Any]:
        m = self._loaded[name]
        if name == "classifier":
            return {"model": m[1].model, "classes": m[1].num_classes}
        if name == "detector":
            return {"model": m[1].model, "classes": m[1].classes}
        if name == "embedder":
            return {"model": m[1].model, "threshold": m[3]}
        if name == "captioner":
            return {"model": m[1].model, "vocabulary": len(m[2])}
        if name == "video":
            return {"model": m[1].model, "classes": m[1].classes}
        return {"model": "mtcnn"}

    # --- inference ------------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def classify(self, pixels: torch.Tensor, topk: int = 5) -> list[dict[str, Any]]:
        net, meta, tf = self.require("classifier")
        with self._locks["classifier"]:
            prob = net(tf(pixels)[None].to(self.device)).float().softmax(1)[0]
        p, idx = prob.topk(min(topk, meta.num_classes))
        return [
            {"label": meta.classes[j], "index": j, "prob": q}
            for j, q in zip(idx.tolist(), p.tolist(), strict=True)
        ]

    @torch.inference_mode()
    def detect(self, pixels: torch.Tensor, conf: float = 0.25, iou: float = 0.45) -> list[dict[str, Any]]:
        from mmkit.tasks.detect.predictor import detect_image

        net, meta = self.require("detector")
        with self._locks["detector"]:
            return detect_image(net, meta, pixels, conf, iou)

    @torch.inference_mode()
    def _find_faces(self, pixels: torch.Tensor, min_face: float = 20):
        mtcnn = self.require("faces")
        with self._locks["faces"]:
            d = mtcnn.detect([pixels.to(self.device)], min_face_size=min_face)[0].to("cpu")
        faces = [
            {
                "box": _round(d.boxes[k]),
                "score": round(float(d.scores[k]), 4),
                "landmarks": _round(d.landmarks[k]),
            }
            for k in range(len(d))
        ]
        return faces, d.landmarks

    def faces(self, pixels: torch.Tensor, min_face: float = 20) -> list[dict[str, Any]]:
        return self._find_faces(pixels, min_face)[0]

    @torch.inference_mode()
    def _embed(self, pixels: torch.Tensor, min_face: float):
        from mmkit.data.face_align import align_faces
        from mmkit.tasks.face import embed

        net, meta, _, _ = self.require("embedder")
        faces, landmarks = self._find_faces(pixels, min_face)
        crops = align_faces(pixels, landmarks, size=meta.img_size)
        with self._locks["embedder"]:
            emb = embed(net, meta, crops)
        return faces, emb

    def _gallery(self):
        from mmkit.data.gallery import Gallery

        _, meta, fingerprint, _ = self.require("embedder")
        return Gallery(self.config.face_db, model=fingerprint, dim=meta.embedding_dim)

    def identify(self, pixels: torch.Tensor, min_face: float = 20) -> list[dict[str, Any]]:
        """Every face with its best match in the gallery ("unknown" past the threshold) and the distance."""
        threshold = self.require("embedder")[3]
        faces, emb = self._embed(pixels, min_face)
        if not faces:
            return []
        with self._gallery_lock, self._gallery() as g:
            matches = g.identify(emb, threshold)
        return [
            {**f, "name": m.name or "unknown", "distance": _none_if_inf(m.distance), "nearest": m.nearest}
            for f, m in zip(faces, matches, strict=True)
        ]

    def enroll(self, pixels: torch.Tensor, name: str, source: str, min_face: float = 20) -> dict[str, Any]:
        """Add the one face of the image to `name`; 422 when the image shows no face or several."""
        name = name.strip()
        if not name:
            raise ServeError(422, "enroll: the form field `name` is empty")
        if len(name) > 200 or not name.isprintable():
            raise ServeError(422, "enroll: `name` must be printable text of at most 200 characters")
        faces, emb = self._embed(pixels, min_face)
        if len(faces) != 1:
            what = "no face" if not faces else f"{len(faces)} faces"
            raise ServeError(
                422, f"{source}: {what} found; enrolling needs exactly one face (nothing enrolled)"
            )
        with self._gallery_lock, self._gallery() as g:
            g.enroll(name, emb, [source])
            count = dict(g.people())[name]
        return {"name": name, "enrolled": 1, "faces_of_person": count, "face": faces[0]}

    def people(self) -> list[dict[str, Any]]:
        with self._gallery_lock, self._gallery() as g:
            return [{"name": n, "faces": c} for n, c in g.people()]

    @torch.inference_mode()
    def caption(self, pixels: torch.Tensor, beam: int = 3) -> dict[str, Any]:
        from mmkit.tasks.caption import SquareResize, decode_batch

        net, meta, vocab, norm = self.require("captioner")
        x = norm(SquareResize(meta.img_size)(pixels)[None].to(self.device))
        with self._locks["captioner"]:
            if meta.paragraph:
                return {"caption": decode_batch(net, meta, vocab, x, beam=beam)[0]}
            text, cap = decode_batch(net, meta, vocab, x, beam=beam, attention=True)[0]
        return {"caption": text, "score": round(float(cap.score), 4)}

    @torch.inference_mode()
    def video(self, path: Path, topk: int = 5, segment_seconds: float | None = None) -> dict[str, Any]:
        from mmkit.data.formats.video import read_frames
        from mmkit.tasks.video.predictor import center_square, class_scores, segment_labels, top_labels

        net, meta, extractor = self.require("video")
        with self._locks["video"]:
            if meta.kind == "clips":
                frames, ts = read_frames(path, num_frames=meta.frames, size=meta.img_size)
                x = center_square(frames, meta.img_size)
            else:
                from mmkit.tasks.video.features import frame_features

                frames, ts = read_frames(path, fps=meta.extractor["fps"])
                x = frame_features(frames[: meta.max_frames], *extractor)
                ts = ts[: meta.max_frames]
            out: dict[str, Any] = {"top": top_labels(class_scores(net, meta, x), meta.classes, topk)}
            if segment_seconds:
                out["segments"] = segment_labels(net, meta, str(path), x, ts, segment_seconds, topk)
        return out
