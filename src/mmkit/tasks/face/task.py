"""Face recognition: train an embedding (FaceNet, triplet loss with online mining, or an ArcFace head), evaluate it
with the LFW protocol, and apply it with MTCNN: detect faces, verify two photos, a gallery to enroll and identify.

    task = FaceTask("synthetic-faces", "facenet-light")          # then Trainer(task, cfg).fit()
    evaluate("runs/face/train/best.pt", "faces/", pairs="faces/pairs.txt")
    detect(["group.jpg"], save_dir="out/")                        # boxes, scores, 5 landmarks per face
    enroll("faces.db", "ada", ["ada.jpg"], weights="best.pt")     # then identify("faces.db", ["photo.jpg"], ...)

Distances are squared L2 between unit embeddings (0..4, FaceNet's convention); a pair is "same" at or below the
threshold. A checkpoint keeps the threshold that maximized accuracy on its validation pairs, the default for
verify/identify.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from mmkit.data.faces import FaceData, Pairs, load_face_data
from mmkit.data.formats.images import read_image
from mmkit.data.transforms import BatchTransform
from mmkit.engine import Runtime, Task, load_checkpoint, select_device
from mmkit.engine.logger import next_run_dir
from mmkit.engine.optim import build_optimizer, decay_groups
from mmkit.errors import MMKitError
from mmkit.models import get_model, get_model_info, get_weights

log = logging.getLogger(__name__)

LOSSES = ("triplet", "arcface", "softmax")
MINING = ("semihard", "hard", "all")
DEFAULT_MEAN, DEFAULT_STD = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]


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


class _Indexed(Dataset):
    """(uint8 image, label) for training, (uint8 image, index) for validation: evaluation reassembles the
    embeddings in order from every rank's share."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], (self.labels[i] if self.labels is not None else i)


class FaceTask(Task):
    name = "face"
    monitor = ("val/acc", "max")

    def __init__(
        self,
        data: str,
        model: str = "facenet-light",
        weights: str | None = None,
        img_size: int | None = None,
        embedding_dim: int = 128,
        loss: str = "triplet",
        margin: float | None = None,
        mining: str = "semihard",
        images_per_person: int = 4,
        augment: bool = True,
        model_kwargs: dict[str, Any] | None = None,
        flip_test: bool = True,
    ) -> None:
        if loss not in LOSSES:
            raise MMKitError(f"--loss {loss}: choose one of {', '.join(LOSSES)}")
        if mining not in MINING:
            raise MMKitError(f"--mining {mining}: choose one of {', '.join(MINING)}")
        if images_per_person < 2:
            raise MMKitError(f"--images-per-person {images_per_person}: triplets need at least 2")
        self.data_spec, self.model_name, self.weights = str(data), model, weights
        self.img_size, self.embedding_dim, self.loss_name = img_size, embedding_dim, loss
        self.margin, self.mining, self.k, self.augment = margin, mining, images_per_person, augment
        self.model_kwargs = dict(model_kwargs or {})
        self.flip_test = flip_test
        self.last_eval: dict[str, Any] | None = None

    def setup(self, cfg, rt: Runtime) -> None:
        from mmkit.losses.metric import ArcFaceHead, SoftmaxHead, TripletLoss

        info = get_model_info(self.model_name)
        if info.task != "face":
            raise MMKitError(f"--model {self.model_name}: a {info.task} model, not a face embedder")
        named = self.weights is not None and self.weights in info.weights
        w = get_weights(self.model_name, self.weights) if named else None
        img = self.img_size or (w.input_size if w else info.default_input_size)
        mean, std = (list(w.mean), list(w.std)) if w else (DEFAULT_MEAN, DEFAULT_STD)
        self.data: FaceData = load_face_data(self.data_spec, img, seed=cfg.seed)
        kwargs = {"embedding_dim": self.embedding_dim, **self.model_kwargs}
        self.model = get_model(self.model_name, 0, weights=self.weights, **kwargs)
        self.meta = FaceMeta(
            self.model_name,
            self.embedding_dim,
            img,
            mean,
            std,
            flip_test=self.flip_test,
            data=self.data_spec,
            model_kwargs=kwargs,
        )
        n_people = len(self.data.train_people)
        self.head: nn.Module | None = None
        if self.loss_name == "triplet":
            self.criterion = TripletLoss(
                margin=0.2 if self.margin is None else self.margin, mining=self.mining
            )
        elif self.loss_name == "arcface":
            m = 0.5 if self.margin is None else self.margin
            self.head = ArcFaceHead(self.embedding_dim, n_people, m=m)
        else:
            self.head = SoftmaxHead(self.embedding_dim, n_people)
        pad = max(1, img // 16) if self.augment else 0
        self.train_tf = BatchTransform(True, mean, std, out_channels=3, pad=pad, hflip=self.augment)
        self.val_tf = BatchTransform(False, mean, std, out_channels=3)
        self.train_ds = _Indexed(self.data.train_images, self.data.train_labels)
        self.val_ds = _Indexed(self.data.val_images, None)
        if rt.is_main:
            log.info("%s; %s at %dpx, %s loss", self.data.summary(), self.model_name, img, self.loss_name)

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model} if self.head is None else {"model": self.model, "head": self.head}

    def optimizers(self, cfg) -> dict[str, torch.optim.Optimizer]:
        groups = decay_groups(self.model, cfg.weight_decay)
        if self.head is not None:  # one optimizer: the class weights learn with the embedding
            groups += decay_groups(self.head, cfg.weight_decay)
        return {"model": build_optimizer(cfg.optimizer, groups, cfg.lr, cfg.weight_decay, cfg.momentum)}

    def train_dataset(self):
        return self.train_ds

    def val_dataset(self):
        return self.val_ds

    def train_batch_sampler(self, batch_size: int, seed: int, rank: int, world: int):
        if self.loss_name != "triplet":
            return None
        from mmkit.data.samplers import PKSampler

        if batch_size % self.k:
            raise MMKitError(f"--batch-size {batch_size}: must be a multiple of --images-per-person {self.k}")
        n = len(self.data.train_labels)
        return PKSampler(
            self.data.train_labels,
            batch_size // self.k,
            self.k,
            seed=seed,
            rank=rank,
            world=world,
            batches_per_epoch=max(1, n // batch_size),  # an epoch sees about every face once
        )

    def loss(self, model, batch):
        x, y = batch
        emb = model(self.train_tf(x))
        if self.head is None:
            loss, stats = self.criterion(emb, y)
            return loss, {k: torch.as_tensor(v, dtype=torch.float32) for k, v in stats.items()}
        logits = self.head(emb, y)
        return F.cross_entropy(logits, y), {"top1": (logits.argmax(1) == y).float().mean() * 100}

    @torch.no_grad()
    def evaluate(self, model, loader, rt):
        from mmkit.metrics.verification import verification_metrics

        parts = []
        for x, idx in loader:
            x, idx = rt.move((x, idx))
            with rt.autocast():
                emb = flip_embed(model, self.val_tf(x), self.meta.flip_test)
            parts.append((idx.cpu(), emb.float().cpu()))
        idx = torch.cat([i for p in rt.gather_objects(parts) for i, _ in p])
        emb = torch.cat([e for p in rt.gather_objects(parts) for _, e in p])
        ordered = torch.empty(len(self.data.val_images), emb.shape[1])
        ordered[idx] = emb
        m = verification_metrics(
            pair_distances(ordered, self.data.val_pairs),
            self.data.val_pairs.same.numpy(),
            self.data.val_pairs.fold.numpy(),
        )
        self.last_eval = m
        self.meta.threshold = float(m["threshold"])
        return {
            "val/acc": 100 * float(m["accuracy"]),
            "val/val_far": 100 * float(m["val"]),
            "val/auc": float(m["auc"]),
            "val/threshold": float(m["threshold"]),
        }

    def checkpoint_meta(self) -> dict[str, Any]:
        return asdict(self.meta)

    def report_sections(self, run_dir: Path, rt):
        from mmkit.report import Section
        from mmkit.report.roc import roc_plot

        if not self.last_eval:
            return []
        m = self.last_eval
        png = roc_plot(m["fpr"], m["tpr"], run_dir / "roc.png", title="Validation pairs (last epoch)")
        rows = [
            ["10-fold accuracy %", f"{100 * m['accuracy']:.2f} ± {100 * m['accuracy_std']:.2f}"],
            ["VAL @ FAR=1e-3 %", f"{100 * m['val']:.2f}"],
            ["AUC", f"{m['auc']:.4f}"],
            ["threshold (squared L2)", f"{m['threshold']:.3f}"],
        ]
        return [
            Section("Verification ROC", images=[(png, "held-out people, LFW protocol")]),
            Section("Verification (validation pairs, last epoch)", table=(["metric", "value"], rows)),
        ]


def pair_distances(emb: torch.Tensor, pairs: Pairs) -> torch.Tensor:
    """Squared L2 distance of each pair's embeddings."""
    return (emb[pairs.i] - emb[pairs.j]).square().sum(1)


# ---------------------------------------------------------------------------------------------------------------------
# Using a trained (or published) embedder


def load_embedder(
    weights: str | os.PathLike, model: str | None = None, device: torch.device | str = "cpu"
) -> tuple[nn.Module, FaceMeta, str]:
    """From an mmkit face checkpoint, or a registered weights name with `model` (e.g. facenet + vggface2).
    Returns the model in eval mode, its meta and a fingerprint naming the embedding space (for galleries)."""
    w = str(weights)
    if model is not None and w in get_model_info(model).weights:
        reg = get_weights(model, w)
        net = get_model(model, 0, weights=w)
        dim = int(getattr(net, "embedding_dim", 512))
        meta = FaceMeta(model, dim, reg.input_size, list(reg.mean), list(reg.std))
        return net.to(device).eval(), meta, f"{model}:{w}"
    path = Path(weights)
    if not path.is_file():
        raise MMKitError(f"{path}: no such weights file")
    ck = load_checkpoint(path)
    if ck.get("task") != "face":
        raise MMKitError(f"{path}: a {ck.get('task')} checkpoint, not a face embedder")
    meta = FaceMeta(**ck["meta"])
    net = get_model(meta.model, 0, **meta.model_kwargs)
    try:
        net.load_state_dict(ck["model"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise MMKitError(f"{path}: weights do not fit {meta.model} as this mmkit builds it ({first})") from e
    digest = hashlib.sha1()
    for t in ck["model"].values():
        digest.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes()[:4096])
    return net.to(device).eval(), meta, f"{meta.model}:{digest.hexdigest()[:12]}"


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


def evaluate(
    weights: str,
    data: str,
    *,
    pairs: str | os.PathLike | None = None,
    model: str | None = None,
    batch_size: int = 256,
    device: str = "auto",
    out: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The LFW protocol: 10-fold accuracy (threshold chosen on the other folds), VAL@FAR=1e-3, AUC and a ROC PNG.

    With `pairs` (an LFW-format pairs.txt), its pairs of images under the folder `data` (every image the file names
    is read); without, the validation pairs of the data spec (held-out people, see `mmkit.data.faces`)."""
    from mmkit.metrics.verification import verification_metrics
    from mmkit.report.roc import roc_plot

    dev = select_device(device)
    net, meta, _ = load_embedder(weights, model, dev)
    if pairs is not None:
        images, pair_idx, source = _images_of_pairs(Path(pairs), Path(data), meta.img_size)
    else:
        d = load_face_data(data, meta.img_size)
        images, pair_idx, source = d.val_images, d.val_pairs, f"{d.source} (held-out people)"
    emb = embed(net, meta, images, batch_size)
    dist = pair_distances(emb, pair_idx)
    m = verification_metrics(dist, pair_idx.same.numpy(), pair_idx.fold.numpy())
    out_dir = Path(out) if out is not None else next_run_dir("runs", "face", "eval", False)
    out_dir.mkdir(parents=True, exist_ok=True)
    roc = roc_plot(m["fpr"], m["tpr"], out_dir / "roc.png", title=f"{Path(str(weights)).name} on {source}")
    result = {
        "weights": str(weights),
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


def _images_of_pairs(pairs_file: Path, root: Path, size: int) -> tuple[torch.Tensor, Pairs, str]:
    """Read the images a pairs.txt names (each once), resized to size×size; the pairs as indices into them."""
    from mmkit.data.faces import resize_square
    from mmkit.data.formats.pairs import read_pairs

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
