"""Using trained generation models: sample grids, translation, super-resolution and restoration of image files, and
evaluation (FID, KID and IS with a named feature network; PSNR / SSIM against bicubic or the degraded input).

    sample("runs/generate/x/best.pt", n=64, out="grid.png")
    evaluate("runs/generate/x/best.pt")       # FID/KID against the real test split of the data it was trained on

FID and KID need a feature network. By default it is a smallcnn classifier trained on the same dataset
(Inception-v3 weights are not offline): `feature_network` trains one once (a few epochs through the classify task)
and keeps it in ``$MMKIT_HOME/feature-nets`` (default ``~/.cache/mmkit/feature-nets``); ``features="inception"``
uses torchvision's Inception-v3 when its weights are on this machine, and a path uses that classifier checkpoint.
Every result names the network it used.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF

from mmkit.data.formats.images import read_image
from mmkit.data.generation import load_generation_data, resize_crop, to_signed, to_uint8
from mmkit.engine import load_checkpoint, select_device
from mmkit.engine.logger import next_run_dir
from mmkit.errors import MMKitError
from mmkit.tasks.generate import GAN_MODELS, GenerateMeta, build_generator, translate_batch

log = logging.getLogger(__name__)

FEATURE_NET_EPOCHS = 3


def load_generator(weights: str | os.PathLike, device="cpu") -> tuple[nn.Module, GenerateMeta]:
    path = Path(weights)
    if not path.is_file():
        raise MMKitError(f"{path}: no such weights file")
    ck = load_checkpoint(path)
    if ck.get("task") != "generate":
        raise MMKitError(f"{path}: a {ck.get('task')} checkpoint, not a generation model")
    meta = GenerateMeta(**ck["meta"])
    net = build_generator(meta)
    try:
        net.load_state_dict(ck["model"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise MMKitError(f"{path}: weights do not fit {meta.model} as this mmkit builds it ({first})") from e
    return net.to(device).eval(), meta


@torch.no_grad()
def sample(
    weights: str,
    *,
    n: int = 64,
    label: int | None = None,
    out: str | os.PathLike = "samples.png",
    seed: int = 0,
    device: str = "auto",
) -> dict[str, Any]:
    """A grid of `n` samples (of class `label` for a conditional model; all classes in turn without one)."""
    from mmkit.report import save_image_grid

    dev = select_device(device)
    net, meta = load_generator(weights, dev)
    if meta.model not in GAN_MODELS:
        raise MMKitError(
            f"{weights}: a {meta.model} model translates images; use generate translate/upscale/restore"
        )
    if n < 1:
        raise MMKitError(f"--n {n}: must be at least 1")
    labels = None
    if label is not None and not meta.conditional:
        raise MMKitError(f"--label: {meta.model} is not conditional")
    if meta.conditional:
        k = len(meta.classes)
        if label is not None and not 0 <= label < k:
            raise MMKitError(f"--label {label}: the model knows classes 0..{k - 1}")
        labels = torch.full((n,), label, device=dev) if label is not None else torch.arange(n, device=dev) % k
    z = torch.randn(n, net.latent_dim, generator=torch.Generator().manual_seed(seed)).to(dev)
    images = to_uint8(net.sample(n, labels, z=z).cpu())
    names = [meta.classes[i] for i in labels.tolist()] if labels is not None else None
    nrow = len(meta.classes) if meta.conditional and label is None else min(8, n)  # a column per class
    path = save_image_grid(images, Path(out), labels=names, nrow=nrow, title=f"{meta.model} samples")
    return {"weights": str(weights), "n": n, "label": label, "out": str(path)}


def _load_inputs(paths: list[str], channels: int, size: int | None) -> tuple[list, list[tuple[str, str]]]:
    """uint8 [C, H, W] images with the model's input channels (and size, when it needs one)."""
    loaded, failures = [], []
    for p in paths:
        try:
            x = read_image(p)
        except MMKitError as e:
            failures.append((p, str(e)))
            continue
        if channels == 1:  # as the photo sets make their gray inputs
            x = TF.rgb_to_grayscale(x)
        if size is not None:
            x = resize_crop(x, size)
        loaded.append((p, x))
    return loaded, failures


@torch.no_grad()
def apply(
    weights: str,
    images: list[str],
    *,
    out_dir: str | os.PathLike,
    expect: tuple[str, ...],
    verb: str,
    device: str = "auto",
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Run a translation / SR / restoration model on image files; writes ``<stem>.<verb>.png`` per image."""
    from PIL import Image

    dev = select_device(device)
    net, meta = load_generator(weights, dev)
    if meta.model not in expect:
        raise MMKitError(f"{weights}: a {meta.model} model; generate {verb} takes {' or '.join(expect)}")
    # pix2pix / CycleGAN work at their training size; LapSRN and RED-Net are fully convolutional
    size = meta.size_a if meta.model in ("pix2pix", "cyclegan") else None
    loaded, failures = _load_inputs(images, meta.channels_a or meta.channels, size)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for path, x in loaded:
        y = to_uint8(translate_batch(net, meta, to_signed(x[None].to(dev))).cpu())[0]
        target = out / f"{Path(path).stem}.{verb}.png"
        arr = y.permute(1, 2, 0).numpy()
        Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(target)
        results.append(
            {"image": path, "size_in": list(x.shape[-2:]), "size_out": list(y.shape[-2:]), "out": str(target)}
        )
    return results, failures


# ---------------------------------------------------------------------------------------------------------------------
# Evaluation


def _cache_dir() -> Path:
    return Path(os.environ.get("MMKIT_HOME", Path.home() / ".cache" / "mmkit")) / "feature-nets"


def feature_network(spec: str, features: str = "auto", device="cpu"):
    """The FID/KID feature network: "auto" (a smallcnn trained on `spec`, trained once and cached),
    "inception" (torchvision's, when its weights are here) or a classifier checkpoint path."""
    from mmkit.metrics.generation import classifier_features, inception_features
    from mmkit.tasks.classify import load_classifier

    if features == "inception":
        return inception_features(device)
    if features != "auto":
        net, meta = load_classifier(features, device=device)
        return classifier_features(net, meta)
    from mmkit.data.builtin import is_builtin

    if not is_builtin(spec):
        raise MMKitError(
            f"{spec}: no classifier to measure FID with; give --features with a classifier checkpoint "
            "(mmkit classify train) or 'inception' when its weights are on this machine"
        )
    ckpt = _cache_dir() / spec / "best.pt"
    if not ckpt.is_file():
        log.info(
            "training the feature network for %s (smallcnn, %d epochs) -> %s", spec, FEATURE_NET_EPOCHS, ckpt
        )
        from mmkit.engine import TrainConfig, Trainer
        from mmkit.tasks.classify import ClassifyTask

        cfg = TrainConfig(
            task="classify", name=spec, project=str(_cache_dir().parent), epochs=FEATURE_NET_EPOCHS,
            batch_size=128, lr=2e-3, device=str(device), exist_ok=True,
        )  # fmt: skip
        with torch.enable_grad():  # callers may be under no_grad
            fit = Trainer(ClassifyTask(spec, "smallcnn", augment="none"), cfg, progress=False).fit()
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        os.replace(fit.run_dir / "best.pt", ckpt)
    net, meta = load_classifier(ckpt, device=device)
    return classifier_features(net, meta, name=f"smallcnn classifier trained on {spec} (mmkit, cached)")


def evaluate(
    weights: str,
    *,
    data: str | None = None,
    features: str = "auto",
    n: int = 10000,
    batch_size: int = 256,
    device: str = "auto",
    out: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """GANs: FID and KID against the real test split, IS and (conditional models) the share of samples the
    classifier names as their label. Translation / SR / restoration: PSNR and SSIM on the test pairs, beside the
    baseline (bicubic for SR, the degraded input for restoration, the input itself for translation)."""
    dev = select_device(device)
    net, meta = load_generator(weights, dev)
    spec = data or meta.data
    d = load_generation_data(spec, meta.kind, meta.img_size)
    result: dict[str, Any] = {"weights": str(weights), "model": meta.model, "data": spec}
    if meta.model in GAN_MODELS:
        result.update(_evaluate_gan(net, meta, d, spec, features, n, batch_size, dev))
    else:
        result.update(_evaluate_pairs(net, meta, d, batch_size, dev))
    out_dir = Path(out) if out is not None else next_run_dir("runs", "generate", "eval", False)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    result["out_dir"] = str(out_dir)
    return result


@torch.no_grad()
def _evaluate_gan(net, meta, d, spec, features, n, batch_size, dev) -> dict[str, Any]:
    from mmkit.metrics.generation import fid_from_features, inception_score, kid

    fx = feature_network(spec, features, dev)
    real = torch.stack([d.test[i][0] for i in range(min(n, len(d.test)))])
    n = len(real)
    f_real, _ = fx(to_signed(real))
    k = len(meta.classes)
    labels = torch.arange(n) % k if meta.conditional else None
    g = torch.Generator().manual_seed(0)
    fakes = []
    for i in range(0, n, batch_size):
        z = torch.randn(min(batch_size, n - i), net.latent_dim, generator=g).to(dev)
        lab = labels[i : i + len(z)].to(dev) if labels is not None else None
        fakes.append(net.sample(len(z), lab, z=z).cpu())
    fake = torch.cat(fakes)
    f_fake, p_fake = fx(fake)
    kid_mean, kid_std = kid(f_real, f_fake)
    r: dict[str, Any] = {
        "feature_network": fx.name,
        "samples": n,
        "fid": fid_from_features(f_real, f_fake),
        "kid": kid_mean,
        "kid_std": kid_std,
    }
    if p_fake is not None:
        r["inception_score"], r["inception_score_std"] = inception_score(p_fake)
        if meta.conditional:
            r["label_accuracy"] = float((p_fake.argmax(1) == labels).float().mean())
    return r


@torch.no_grad()
def _evaluate_pairs(net, meta, d, batch_size, dev) -> dict[str, Any]:
    from mmkit.metrics.generation import bicubic_upscale, psnr, ssim

    if meta.kind == "unpaired" and not d.aligned_test:
        raise MMKitError(f"{meta.data}: its test images have no true translations to score against")
    ps, ss, bp, bs = [], [], [], []
    loader = torch.utils.data.DataLoader(d.test, batch_size=batch_size)
    for a, b in loader:
        a, b = to_signed(a.to(dev)), to_signed(b.to(dev))
        y = translate_batch(net, meta, a)
        if meta.model == "lapsrn":
            base = bicubic_upscale(a, b.shape[-1])
        elif a.shape == b.shape:
            base = a
        else:
            base = None
        ps.append(psnr(y, b))
        ss.append(ssim(y, b) if min(b.shape[-2:]) >= 11 else torch.full((len(b),), float("nan")))
        if base is not None:
            bp.append(psnr(base, b))
            bs.append(ssim(base, b) if min(b.shape[-2:]) >= 11 else torch.full((len(b),), float("nan")))
    r: dict[str, Any] = {"images": sum(len(p) for p in ps), "psnr": float(torch.cat(ps).mean())}
    r["ssim"] = float(torch.cat(ss).mean())
    if bp:
        r["baseline"] = "bicubic upscaling" if meta.model == "lapsrn" else "the input itself"
        r["baseline_psnr"], r["baseline_ssim"] = float(torch.cat(bp).mean()), float(torch.cat(bs).mean())
    return r
