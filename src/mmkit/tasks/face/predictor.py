"""Using a trained (or published) face embedder: `FacePredictor` loads it, embeds faces and evaluates verification.

    p = FacePredictor.load("runs/face/train/best.pt")              # or .load("vggface2", model="facenet")
    p.embed(crops)                                                 # unit embeddings of uint8 face crops
    p.evaluate("faces/test", pairs="faces/pairs.txt")              # the LFW protocol

Distances are squared L2 between unit embeddings (0..4, FaceNet's convention); a pair is "same" at or below the
threshold. A checkpoint keeps the threshold that maximized accuracy on its validation pairs.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mmkit.data.faces import Pairs, load_face_data, resize_square
from mmkit.data.formats.images import read_image
from mmkit.data.formats.pairs import read_pairs
from mmkit.data.transforms import BatchTransform
from mmkit.errors import MMKitError
from mmkit.export import Graph
from mmkit.models import get_model, get_weights
from mmkit.models.mtcnn import load_mtcnn
from mmkit.tasks.face.detection import find_faces
from mmkit.tasks.predictor import Predictor

DEFAULT_MEAN, DEFAULT_STD = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]  # models trained from scratch


@dataclass
class FaceMeta:
    """What it takes to rebuild an embedder and feed it: stored in every face checkpoint as `meta`."""

    model: str
    embedding_dim: int
    img_size: int
    mean: list[float]
    std: list[float]
    threshold: float | None = None  # squared L2, chosen on the validation pairs
    flip_test: bool = True  # embed each face and its mirror image (validation, eval and the gallery alike)
    data: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)


def pair_distances(emb: torch.Tensor, pairs: Pairs) -> torch.Tensor:
    """Squared L2 distance of each pair's embeddings."""
    return (emb[pairs.i] - emb[pairs.j]).square().sum(1)


@torch.no_grad()
def flip_embed(net: nn.Module, x: torch.Tensor, flip: bool) -> torch.Tensor:
    """The unit embedding of a normalized batch; with `flip`, of the sum of the embeddings of the faces and of their
    mirror images (the usual flip test of face verification: one face, two views)."""
    emb = net(x).float()
    if flip:
        emb = F.normalize(emb + net(x.flip(-1)).float(), dim=1)
    return emb


@torch.no_grad()
def embed(net: nn.Module, meta: FaceMeta, faces: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Unit embeddings [N, D] (on the CPU) of uint8 face crops [N, 3, H, W], resized to the model's input size."""
    dev = next(net.parameters()).device
    tf = BatchTransform(False, meta.mean, meta.std, out_channels=3, size=meta.img_size).to(dev)
    out = [
        flip_embed(net, tf(faces[i : i + batch_size].to(dev)), meta.flip_test).cpu()
        for i in range(0, len(faces), batch_size)
    ]
    return torch.cat(out) if out else torch.zeros(0, meta.embedding_dim)


class FlipEmbedding(nn.Module):
    """`flip_embed` as a module (for export): normalized faces -> their unit embeddings."""

    def __init__(self, net: nn.Module, flip: bool) -> None:
        super().__init__()
        self.net, self.flip = net, flip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return flip_embed(self.net, x, self.flip)


def mtcnn_graphs() -> list[Graph]:
    """MTCNN's three networks as `find_faces` runs them, on pixels normalized as (x - 127.5) / 128: P-Net over a
    whole image of any size (box offsets [batch, 4, rows, cols] and face probabilities [batch, rows, cols], a
    12 px window per cell, stride 2), R-Net on 24 px crops and O-Net on 48 px crops (box offsets, O-Net's five
    landmarks, face probabilities). The cascade around them (image pyramid, crops, NMS) stays outside."""
    mtcnn = load_mtcnn()
    g = torch.Generator().manual_seed(0)

    def pixels(*shape: int) -> torch.Tensor:
        return (torch.randint(0, 256, shape, generator=g).float() - 127.5) / 128

    image_axes = {0: "batch", 2: "height", 3: "width"}
    pnet_axes = {"image": image_axes, "boxes": {0: "batch", 2: "rows", 3: "cols"}}
    pnet_axes["probs"] = {0: "batch", 1: "rows", 2: "cols"}
    return [
        Graph("pnet", mtcnn.pnet, (pixels(1, 3, 61, 47),), ["image"], ["boxes", "probs"], pnet_axes),
        Graph("rnet", mtcnn.rnet, (pixels(2, 3, 24, 24),), ["crops"], ["boxes", "probs"]),
        Graph("onet", mtcnn.onet, (pixels(2, 3, 48, 48),), ["crops"], ["boxes", "landmarks", "probs"]),
    ]


def _weights_fingerprint(model: str, state: dict[str, torch.Tensor]) -> str:
    """Names the embedding space of a checkpoint (a gallery refuses embeddings of another): a digest of its weights."""
    digest = hashlib.sha1()
    for t in state.values():
        digest.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes()[:4096])
    return f"{model}:{digest.hexdigest()[:12]}"


class FacePredictor(Predictor):
    """A face embedder, with `fingerprint` naming its embedding space (for galleries)."""

    task = "face"
    meta: FaceMeta

    def __init__(
        self,
        net: nn.Module,
        meta: FaceMeta,
        device: torch.device,
        source: str,
        fingerprint: str | None = None,
    ) -> None:
        super().__init__(net, meta, device, source)
        self.fingerprint = fingerprint or source

    @staticmethod
    def network(meta: FaceMeta) -> nn.Module:
        return get_model(meta.model, **meta.model_kwargs)

    @classmethod
    def from_checkpoint(cls, ck, path, device) -> FacePredictor:
        meta = FaceMeta(**ck["meta"])
        net = cls.build(cls.network(meta), ck, path, meta.model)
        return cls(net, meta, device, str(path), _weights_fingerprint(meta.model, ck["model"]))

    @classmethod
    def from_named(cls, model, weights, device) -> FacePredictor:
        """Published weights, e.g. facenet + vggface2 or casia-webface (no validated threshold)."""
        reg = get_weights(model, weights)
        net = get_model(model, weights=weights)
        dim = int(getattr(net, "embedding_dim", 512))
        meta = FaceMeta(model, dim, reg.input_size, list(reg.mean), list(reg.std))
        return cls(net, meta, device, f"{model}:{weights}", f"{model}:{weights}")

    def export_graphs(self, net: nn.Module) -> list[Graph]:
        """The embedder: uint8 face crops [batch, 3, img_size, img_size] -> unit embeddings, the normalization and
        the flip test inside (what `embed` computes); then MTCNN's three networks (`mtcnn_graphs`)."""
        meta = self.meta
        g = torch.Generator().manual_seed(0)
        crops = torch.randint(0, 256, (2, 3, meta.img_size, meta.img_size), dtype=torch.uint8, generator=g)
        embedder = nn.Sequential(
            BatchTransform(False, meta.mean, meta.std, out_channels=3), FlipEmbedding(net, meta.flip_test)
        )
        return [Graph("embedder", embedder, (crops,), ["crops"], ["embedding"]), *mtcnn_graphs()]

    def embed(self, faces: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Unit embeddings [N, D] (CPU) of uint8 face crops [N, 3, H, W]."""
        return embed(self.net, self.meta, faces, batch_size)

    def predict(
        self, images: list[str | os.PathLike], *, aligned: bool = False, min_face: int = 20
    ) -> list[dict[str, Any]]:
        """Every face of each image (MTCNN + alignment, or with `aligned` the image as one crop): where it is and
        its unit embedding."""
        paths = [str(p) for p in images]
        found = find_faces(paths, self.meta.img_size, aligned=aligned, min_face=min_face, device=self.device)
        out = []
        for p, faces in zip(paths, found, strict=True):
            emb = self.embed(torch.stack([f.crop for f in faces])) if faces else torch.zeros(0)
            out.append(
                {
                    "file": p,
                    "faces": [
                        {**f.where(), "embedding": e.tolist()} for f, e in zip(faces, emb, strict=True)
                    ],
                }
            )
        return out

    def evaluate(
        self,
        data: str,
        *,
        pairs: str | os.PathLike | None = None,
        batch_size: int = 256,
        out: str | os.PathLike | None = None,
    ) -> dict[str, Any]:
        """The LFW protocol: 10-fold accuracy (threshold chosen on the other folds), VAL@FAR=1e-3, AUC and a ROC PNG.

        With `pairs` (an LFW-format pairs.txt), its pairs of images under the folder `data` (every image the file
        names is read); without, the validation pairs of the data spec (held-out people, see `mmkit.data.faces`)."""
        # scikit-learn and matplotlib load only when evaluating
        from mmkit.metrics.verification import verification_metrics
        from mmkit.report.roc import roc_plot

        meta = self.meta
        if pairs is not None:
            images, pair_idx, source = _images_of_pairs(Path(pairs), Path(data), meta.img_size)
        else:
            d = load_face_data(data, meta.img_size)
            images, pair_idx, source = d.val_images, d.val_pairs, f"{d.source} (held-out people)"
        dist = pair_distances(self.embed(images, batch_size), pair_idx)
        m = verification_metrics(dist, pair_idx.same.numpy(), pair_idx.fold.numpy())
        out_dir = self.eval_dir(out)
        name = Path(self.source).name if Path(self.source).is_file() else self.source
        roc = roc_plot(m["fpr"], m["tpr"], out_dir / "roc.png", title=f"{name} on {source}")
        result = {
            "weights": self.source,
            "data": source,
            "pairs": len(pair_idx),
            "accuracy": float(m["accuracy"]),
            "accuracy_std": float(m["accuracy_std"]),
            "val_far": float(m["val"]),
            "val_far_std": float(m.get("val_std", 0.0)),
            "far": float(m.get("far", 1e-3)),
            "auc": float(m["auc"]),
            "threshold": float(m["threshold"]),
            "roc_png": str(roc),
        }
        with open(out_dir / "metrics.json", "w") as f:
            json.dump(result, f, indent=2)
        with open(out_dir / "pair_distances.csv", "w") as f:
            f.write("i,j,same,fold,distance\n")
            for a, b, s, k, dd in zip(
                pair_idx.i.tolist(),
                pair_idx.j.tolist(),
                pair_idx.same.tolist(),
                pair_idx.fold.tolist(),
                dist.tolist(),
                strict=True,
            ):
                f.write(f"{a},{b},{int(s)},{k},{dd:.6f}\n")
        result["out_dir"] = str(out_dir)
        return result


PREDICTOR = FacePredictor


def _images_of_pairs(pairs_file: Path, root: Path, size: int) -> tuple[torch.Tensor, Pairs, str]:
    """Read the images a pairs.txt names (each once), resized to size×size; the pairs as indices into them."""

    if not pairs_file.is_file():
        raise MMKitError(f"{pairs_file}: no such pairs file")
    listed = read_pairs(pairs_file, root)
    index: dict[str, int] = {}
    for p in listed:
        for path in (str(p.path1), str(p.path2)):
            index.setdefault(path, len(index))
    images = torch.stack([resize_square(read_image(p)[None], size)[0] for p in index])
    t = torch.tensor(
        [(index[str(p.path1)], index[str(p.path2)], int(p.same), p.fold) for p in listed], dtype=torch.int64
    )
    return images, Pairs(t[:, 0], t[:, 1], t[:, 2].bool(), t[:, 3]), f"{root} ({pairs_file.name})"


# The task's functions, as the CLI and scripts call them: a predictor loaded from `weights` (with `model` for named
# weights such as facenet's vggface2), then its method.


def load_embedder(
    weights: str | os.PathLike, model: str | None = None, device: torch.device | str = "cpu"
) -> tuple[nn.Module, FaceMeta, str]:
    """From an mmkit face checkpoint, or a registered weights name with `model` (e.g. facenet + vggface2).
    Returns the model in eval mode, its meta and a fingerprint naming the embedding space (for galleries)."""
    p = FacePredictor.load(weights, model=model, device=device)
    return p.net, p.meta, p.fingerprint


def evaluate(
    weights: str | os.PathLike,
    data: str,
    *,
    pairs: str | os.PathLike | None = None,
    model: str | None = None,
    batch_size: int = 256,
    device: str = "auto",
    out: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """`FacePredictor.evaluate` of `weights`: 10-fold accuracy, VAL@FAR=1e-3, AUC, ROC PNG, pair distances."""
    p = FacePredictor.load(weights, model=model, device=device)
    return p.evaluate(data, pairs=pairs, batch_size=batch_size, out=out)
