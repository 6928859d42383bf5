"""Using trained generation models: `GeneratorPredictor` draws sample grids (GANs), translates, upscales or restores
image files at their own size (the other families; large images in overlapping tiles), and evaluates (FID, KID and
IS with a named feature network; PSNR / SSIM against bicubic or the degraded input; for text-to-image models the
attribute check of `mmkit.tasks.generate.attributes` and FID).

    sample("runs/generate/x/best.pt", n=64, out="grid.png")
    evaluate("runs/generate/x/best.pt")       # FID/KID against the real test split of the data it was trained on
    attribute_check("runs/generate/stackgan/last.pt")   # text to image on caption-scenes: do images hold the prompt?

FID and KID need a feature network. By default it is a smallcnn classifier trained on the same dataset
(Inception-v3 weights are not offline): `feature_network` trains one once (a few epochs through the classify task;
for the unlabelled synthetic-faces, one that tells their 240 training people apart) and keeps it in
``$MMKIT_HOME/feature-nets`` (default ``~/.cache/mmkit/feature-nets``); ``features="inception"`` uses torchvision's
Inception-v3 when its weights are on this machine, and a path uses that classifier checkpoint. Every result names the
network it used. For text-to-image models on caption-scenes, "auto" is the attribute reader (a smallcnn trained on the
scenes' attributes, cached beside them).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF

from mmkit.data.formats.images import read_images
from mmkit.data.generation import load_generation_data, to_signed, to_uint8
from mmkit.errors import MMKitError
from mmkit.export import Graph
from mmkit.metrics.generation import Fidelity
from mmkit.tasks.generate import attributes
from mmkit.tasks.generate.common import GenerateMeta, baseline, to_unit, write_eval
from mmkit.tasks.generate.options import TILE
from mmkit.tasks.generate.task import (
    MODEL_FAMILY,
    build_generator,
    model_spec,
    translate_batch,
    translate_image,
)
from mmkit.tasks.predictor import Predictor

log = logging.getLogger(__name__)

FEATURE_NET_EPOCHS = 3
FACES = "synthetic-faces"  # unlabelled as generation data; its feature network learns the people apart
# (epochs, batch size) of that network: 240 people are a harder task than ten classes (after 20 epochs at batch 64 it
# names about half of held-out images of them right; after 3 at 128, 1 %)
FACE_NET_TRAINING = (20, 64)


class GeneratorPredictor(Predictor):
    """A trained generator: `sample` (GANs), `predict` (translate / upscale / restore files), `evaluate`."""

    task = "generate"
    meta: GenerateMeta

    network = staticmethod(build_generator)

    @property
    def verb(self) -> str:
        """What the model does: sample | translate | upscale | restore."""
        return model_spec(self.meta.model).verb

    def export_graphs(self, net: nn.Module) -> list[Graph]:
        """The generator. GANs: noise z [batch, latent_dim] (and, conditional ones, int64 labels [batch]) -> images
        [batch, C, S, S] in [-1, 1]. The others: images in [-1, 1] -> images in [-1, 1], what `translate_batch`
        gives (CycleGAN A -> B, LapSRN's finest level), of any height and width (the padding the translation
        generators need is inside the graph)."""
        meta, g = self.meta, torch.Generator().manual_seed(0)
        if meta.vocab:
            raise MMKitError(f"{self.source}: a text-to-image model ({meta.model}); export is not supported")
        if self.verb == "sample":
            z = torch.randn(2, net.latent_dim, generator=g)
            if not meta.conditional:
                return [Graph("generator", net, (z,), ["z"], ["images"])]
            labels = torch.arange(2) % len(meta.classes)
            return [Graph("generator", net, (z, labels), ["z", "labels"], ["images"])]
        side = meta.size_a or meta.img_size
        # sides off the multiple the translation generators pad to, so that their padding is traced
        a = torch.rand(2, meta.channels_a or meta.channels, side + 5, side + 3, generator=g) * 2 - 1
        axes = {"images": {0: "batch", 2: "height", 3: "width"}}
        axes["output"] = {0: "batch", 2: "out_height", 3: "out_width"}
        return [Graph("generator", Translator(net, meta), (a,), ["images"], ["output"], axes)]

    # --- GANs -------------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        n: int = 64,
        *,
        label: int | None = None,
        out: str | os.PathLike = "samples.png",
        seed: int = 0,
        text: str | None = None,
    ) -> dict[str, Any]:
        """A grid of `n` samples (of class `label` for a conditional model; all classes in turn without one; of
        caption `text` for a text-to-image model)."""
        from mmkit.report import save_image_grid
        from mmkit.tasks.generate.text2image import draw

        net, meta, dev = self.net, self.meta, self.device
        if self.verb != "sample":
            raise MMKitError(
                f"{self.source}: a {meta.model} model translates images; use generate translate/upscale/restore"
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
            labels = (
                torch.full((n,), label, device=dev) if label is not None else torch.arange(n, device=dev) % k
            )
        z = torch.randn(n, net.latent_dim, generator=torch.Generator().manual_seed(seed)).to(dev)
        if meta.vocab or text is not None:  # text to image: n images of one caption
            images = to_uint8(draw(net, meta, text, z).cpu())
        else:
            images = to_uint8(net.sample(n, labels, z=z).cpu())
        names = [meta.classes[i] for i in labels.tolist()] if labels is not None else None
        nrow = len(meta.classes) if meta.conditional and label is None else min(8, n)  # a column per class
        title = f"{meta.model}: {text}" if text else f"{meta.model} samples"
        path = save_image_grid(images, Path(out), labels=names, nrow=nrow, title=title)
        return {"weights": self.source, "n": n, "label": label, "text": text, "out": str(path)}

    # --- translation, super-resolution, restoration -----------------------------------------------------------------
    @torch.no_grad()
    def predict(
        self,
        images: list[str | os.PathLike],
        *,
        out_dir: str | os.PathLike,
        verb: str | None = None,
        tile: int = TILE,
    ) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """Run the model on image files at their own size; writes ``<stem>.<verb>.png`` per image. Images with a
        side over `tile` px go through in overlapping tiles, blended (`translate_image`). With `verb`
        ("translate", "upscale", "restore"), refuses a model that does something else. Returns (results,
        failures)."""
        from PIL import Image

        meta = self.meta
        verb = verb or self.verb
        if self.verb != verb:
            expect = [m for m in MODEL_FAMILY if model_spec(m).verb == verb]
            raise MMKitError(
                f"{self.source}: a {meta.model} model; generate {verb} takes {' or '.join(expect)}"
            )
        failures: list[tuple[str, str]] = []
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        results = []
        for path, x in read_images(images, failures):
            if (meta.channels_a or meta.channels) == 1:  # as the photo sets make their gray inputs
                x = TF.rgb_to_grayscale(x)
            a = to_signed(x[None].to(self.device))
            y = to_uint8(translate_image(self.net, meta, a, tile).cpu())[0]
            target = out / f"{Path(path).stem}.{verb}.png"
            arr = y.permute(1, 2, 0).numpy()
            Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(target)
            results.append(
                {
                    "image": path,
                    "size_in": list(x.shape[-2:]),
                    "size_out": list(y.shape[-2:]),
                    "out": str(target),
                }
            )
        return results, failures

    # --- evaluation -------------------------------------------------------------------------------------------------
    def evaluate(
        self,
        data: str | None = None,
        *,
        features: str = "auto",
        n: int = 10000,
        batch_size: int = 256,
        fidelity: Fidelity = Fidelity(),
        out: str | os.PathLike | None = None,
    ) -> dict[str, Any]:
        """GANs: FID and KID against the real test split, IS and (conditional models) the share of samples the
        classifier names as their label. Text to image (on caption-scenes): the attribute check of one image per
        test caption (the first `n`; `check` in `mmkit.tasks.generate.attributes`), and FID and KID of those images
        against the real test images (features "auto": the attribute reader's). Translation / SR / restoration:
        PSNR and SSIM on the test pairs under the `fidelity` convention (default: RGB in [0, 1]; its name is in the
        keys, e.g. ``psnr_rgb``), beside the baseline (bicubic for SR, the degraded input for restoration, the input
        itself for translation)."""
        meta = self.meta
        spec = data or meta.data
        result: dict[str, Any] = {"weights": self.source, "model": meta.model, "data": spec}
        if meta.vocab:  # captioned scenes, not generation data
            result.update(self._evaluate_text(spec, features, n, batch_size))
        else:
            d = load_generation_data(spec, meta.kind, meta.img_size)
            if self.verb == "sample":
                result.update(self._evaluate_samples(d, spec, features, n, batch_size))
            else:
                result.update(self._evaluate_pairs(d, batch_size, fidelity))
        result["out_dir"] = str(write_eval(result, out))
        return result

    @torch.no_grad()
    def _evaluate_samples(self, d, spec: str, features: str, n: int, batch_size: int) -> dict[str, Any]:
        from mmkit.metrics.generation import inception_score

        net, meta, dev = self.net, self.meta, self.device
        fx = feature_network(spec, features, dev)
        real = torch.stack([d.test[i][0] for i in range(min(n, len(d.test)))])
        n = len(real)
        k = len(meta.classes)
        labels = torch.arange(n) % k if meta.conditional else None
        g = torch.Generator().manual_seed(0)
        fakes = []
        for i in range(0, n, batch_size):
            z = torch.randn(min(batch_size, n - i), net.latent_dim, generator=g).to(dev)
            lab = labels[i : i + len(z)].to(dev) if labels is not None else None
            fakes.append(net.sample(len(z), lab, z=z).cpu())
        r, p_fake = _distances(fx, to_signed(real), torch.cat(fakes))
        r["samples"] = n
        if p_fake is not None:
            r["inception_score"], r["inception_score_std"] = inception_score(p_fake)
            if meta.conditional:
                r["label_accuracy"] = float((p_fake.argmax(1) == labels).float().mean())
        return r

    @torch.no_grad()
    def _evaluate_text(self, spec: str, features: str, n: int, batch_size: int) -> dict[str, Any]:
        if spec not in (attributes.DATA, attributes.READER_DATA):
            raise MMKitError(
                f"{self.source}: a text-to-image model; its eval (the attribute check, FID) draws caption-scenes' "
                f"test captions, not {spec}'s: give --data {attributes.DATA}"
            )
        reader, prompts, fake = self._draw_prompts(n, 1, 0, batch_size)
        auto = features == "auto"
        fx = attributes.reader_features(reader) if auto else feature_network(spec, features, self.device)
        return {**attributes.check(reader, fake, prompts), **_distances(fx, prompts.real, fake)[0]}

    @torch.no_grad()
    def attribute_check(
        self, n: int | None = None, *, samples: int = 1, seed: int = 0, batch_size: int = 100
    ) -> dict[str, Any]:
        """The attribute check (`mmkit.tasks.generate.attributes.check`) of `samples` images for each of the first
        `n` (default all 300) test captions of caption-scenes, noise from `seed`."""
        reader, prompts, fake = self._draw_prompts(n, samples, seed, batch_size)
        return {
            "weights": self.source,
            "model": self.meta.model,
            **attributes.check(reader, fake, prompts, seed),
        }

    def _draw_prompts(self, n: int | None, samples: int, seed: int, batch_size: int):
        """The attribute reader, caption-scenes' first `n` test prompts and `samples` images of each."""
        if not self.meta.vocab:
            raise MMKitError(f"{self.source}: a {self.meta.model} model does not draw from text")
        prompts = attributes.scene_prompts(n)
        fake = attributes.draw_prompts(self.net, self.meta, prompts.captions, samples, seed, batch_size)
        return attributes.attribute_reader(_cache_dir(), self.device), prompts, fake

    @torch.no_grad()
    def _evaluate_pairs(self, d, batch_size: int, fidelity: Fidelity) -> dict[str, Any]:
        meta, dev = self.meta, self.device
        if meta.kind == "unpaired" and not d.aligned_test:
            raise MMKitError(f"{meta.data}: its test images have no true translations to score against")
        scores: dict[str, list[torch.Tensor]] = {}
        base_name = None
        for a, b in torch.utils.data.DataLoader(d.test, batch_size=batch_size):
            a, b = to_signed(a.to(dev)), b.to(dev)
            outputs = {"": translate_batch(self.net, meta, a)}
            ref = baseline(a, to_signed(b))
            if ref is not None:
                base_name, outputs["baseline_"] = ref[0], ref[1]
            for prefix, y in outputs.items():
                for k, v in fidelity(to_unit(y), b).items():
                    scores.setdefault(prefix + k, []).append(v.cpu())
        r: dict[str, Any] = {"images": len(d.test), "convention": fidelity.name}
        r.update({k: float(torch.cat(v).mean()) for k, v in scores.items()})
        if base_name is not None:
            r["baseline"] = base_name
        return r


PREDICTOR = GeneratorPredictor


def _distances(fx, real: torch.Tensor, fake: torch.Tensor) -> tuple[dict[str, Any], torch.Tensor | None]:
    """FID and KID between real and generated images in [-1, 1] in the features of `fx` (named in the result), and
    the network's probabilities of the generated ones (None where it has none)."""
    from mmkit.metrics.generation import fid_from_features, kid

    (f_real, _), (f_fake, p_fake) = fx(real), fx(fake)
    kid_mean, kid_std = kid(f_real, f_fake)
    r = {
        "feature_network": fx.name,
        "fid": fid_from_features(f_real, f_fake),
        "kid": kid_mean,
        "kid_std": kid_std,
    }
    return r, p_fake


class Translator(nn.Module):
    """`translate_batch` as a module (for export): images in [-1, 1] -> the model's output in [-1, 1]."""

    def __init__(self, net: nn.Module, meta: GenerateMeta) -> None:
        super().__init__()
        self.net, self.meta = net, meta

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return translate_batch(self.net, self.meta, a)


# ---------------------------------------------------------------------------------------------------------------------
# The FID/KID feature network, trained once per dataset and cached


def _cache_dir() -> Path:
    return Path(os.environ.get("MMKIT_HOME", Path.home() / ".cache" / "mmkit")) / "feature-nets"


def feature_network(spec: str, features: str = "auto", device="cpu"):
    """The FID/KID feature network: "auto" (a smallcnn trained on `spec`, trained once and cached),
    "inception" (torchvision's, when its weights are here) or a classifier checkpoint path."""
    from mmkit.metrics.generation import classifier_features, inception_features
    from mmkit.tasks.classify.predictor import load_classifier

    if features == "inception":
        return inception_features(device)
    if features != "auto":
        net, meta = load_classifier(features, device=device)
        return classifier_features(net, meta)
    from mmkit.data.builtin import is_builtin

    if not is_builtin(spec) and spec != FACES:
        raise MMKitError(
            f"{spec}: no classifier to measure FID with; give --features with a classifier checkpoint "
            "(mmkit classify train) or 'inception' when its weights are on this machine"
        )
    ckpt = _cache_dir() / spec / "best.pt"
    if not ckpt.is_file():
        epochs, batch = FACE_NET_TRAINING if spec == FACES else (FEATURE_NET_EPOCHS, 128)
        log.info("training the feature network for %s (smallcnn, %d epochs) -> %s", spec, epochs, ckpt)
        from mmkit.engine import TrainConfig, Trainer
        from mmkit.tasks.classify.task import ClassifyTask

        cfg = TrainConfig(
            task="classify", name=spec, project=str(_cache_dir().parent), epochs=epochs,
            batch_size=batch, lr=2e-3, device=str(device), exist_ok=True,
        )  # fmt: skip
        with torch.enable_grad():  # callers may be under no_grad
            task = ClassifyTask(data=_classes_of(spec), model="smallcnn", augment="none")
            fit = Trainer(task, cfg, progress=False).fit()
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        os.replace(fit.run_dir / "best.pt", ckpt)
    net, meta = load_classifier(ckpt, device=device)
    what = f"{spec} identities" if spec == FACES else spec
    return classifier_features(net, meta, name=f"smallcnn classifier trained on {what} (mmkit, cached)")


def _classes_of(spec: str) -> str:
    """The classification data of a builtin's feature network: the builtin itself, or for the (unlabelled)
    synthetic faces their 240 training people, one class each, written once as image folders beside the cache."""
    if spec != FACES:
        return spec
    from mmkit.data.synthetic_faces import make_identities

    people = _cache_dir() / spec / "people"
    # identities 0..239 of seed 0: the builtin's training people, same pixels
    if not (people / "train").is_dir():
        make_identities(people, n_identities=240, test_fraction=0.0)
    return str(people / "train")


# ---------------------------------------------------------------------------------------------------------------------
# The task's functions, as the CLI and scripts call them: a predictor loaded from `weights`, then its method.


def load_generator(weights: str | os.PathLike, device="cpu") -> tuple[nn.Module, GenerateMeta]:
    p = GeneratorPredictor.load(weights, device=device)
    return p.net, p.meta


def sample(
    weights: str,
    *,
    n: int = 64,
    label: int | None = None,
    out: str | os.PathLike = "samples.png",
    seed: int = 0,
    device: str = "auto",
    text: str | None = None,
) -> dict[str, Any]:
    """A grid of `n` samples (of class `label` for a conditional model; all classes in turn without one; of
    caption `text` for a text-to-image model)."""
    return GeneratorPredictor.load(weights, device=device).sample(
        n, label=label, out=out, seed=seed, text=text
    )


def apply(
    weights: str,
    images: list[str],
    *,
    out_dir: str | os.PathLike,
    verb: str,
    device: str = "auto",
    tile: int = TILE,
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Translate / upscale / restore image files (`verb`) with a model that does that, at their own size (in
    overlapping `tile` px tiles where larger); writes ``<stem>.<verb>.png`` per image."""
    p = GeneratorPredictor.load(weights, device=device)
    return p.predict(images, out_dir=out_dir, verb=verb, tile=tile)


def attribute_check(
    weights: str | os.PathLike,
    *,
    samples: int = 1,
    seed: int = 0,
    device: str = "cpu",
    batch_size: int = 100,
) -> dict[str, Any]:
    """`GeneratorPredictor.attribute_check` of the text-to-image checkpoint `weights` on all 300 test captions."""
    p = GeneratorPredictor.load(weights, device=device)
    return p.attribute_check(samples=samples, seed=seed, batch_size=batch_size)


def evaluate(
    weights: str,
    *,
    data: str | None = None,
    features: str = "auto",
    n: int = 10000,
    batch_size: int = 256,
    device: str = "auto",
    fidelity: Fidelity = Fidelity(),
    out: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """`GeneratorPredictor.evaluate` of the checkpoint `weights`."""
    p = GeneratorPredictor.load(weights, device=device)
    return p.evaluate(data, features=features, n=n, batch_size=batch_size, fidelity=fidelity, out=out)
