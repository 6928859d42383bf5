"""What the generation families share: the checkpoint's `GenerateMeta`, the engine Task they all are
(`GenerateFamily`: options, data, the network, start weights, sample grids, the report), the image-to-image
base of translation and restoration, and the adversarial base of the GANs, translation and text to image
(`AdversarialFamily`: manual optimization, the papers' optimizers, a checkpointed `TrainingState`).

Under DDP (`torchrun`) the engine averages the gradients of every optimizer step over the ranks; validation gathers
every rank's share (`gather`), so all ranks compute the same metrics.

Images are float in [-1, 1] inside the models; datasets give uint8 (`mmkit.data.generation`). Each family is a
subclass with a small `MODELS` table of the models it trains and their per-model settings.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mmkit.data.generation import GenerationData, load_generation_data, to_signed, to_uint8
from mmkit.engine import Runtime, Task, load_model_state, load_task_checkpoint
from mmkit.errors import MMKitError
from mmkit.models import get_model_info
from mmkit.tasks.generate.options import GenerateOptions

log = logging.getLogger(__name__)

GRID_SEED = 1234  # the fixed noise of the per-epoch sample grids


@dataclass
class GenerateMeta:
    """What it takes to rebuild a generator and feed it: stored in every generate checkpoint as `meta`."""

    model: str
    data: str
    kind: str  # images | paired | unpaired
    channels: int  # of the generated images
    img_size: int
    channels_a: int | None = None  # inputs of translation / SR / restoration
    size_a: int | None = None
    classes: list[str] = field(default_factory=list)  # conditional GANs: the labels they draw
    latent_dim: int = 0
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    vocab: list[str] = field(default_factory=list)  # text-to-image: the caption words (after the 4 specials)

    @property
    def conditional(self) -> bool:
        return bool(self.classes)


@dataclass(frozen=True)
class ModelSpec:
    """One model of a family: the data it trains on and what `mmkit generate <verb>` does with it."""

    kind: str  # images | paired | unpaired
    verb: str  # sample | translate | upscale | restore


@dataclass(frozen=True)
class AdversarialSpec(ModelSpec):
    """A model trained adversarially (GANs, translation): the optimizers of its paper and its discriminator's kind."""

    optimizer: str = "adam"  # for both sides: "adam" with `betas`, or "rmsprop" (WGAN, DualGAN: no momentum)
    # Adam's betas: DCGAN's, pix2pix's, CycleGAN's, DiscoGAN's; (0, 0.9) for WGAN-GP
    betas: tuple[float, float] = (0.5, 0.999)
    # "": a discriminator, one step per generator step. Otherwise a Wasserstein critic, trained on every batch and the
    # generator on every n_critic-th, kept Lipschitz by "clip" (its weights clamped to [-c, c] after each of its
    # steps: WGAN, DualGAN) or "penalty" (the gradient penalty: WGAN-GP).
    critic: str = ""


def pixel_fid(real: torch.Tensor, fake: torch.Tensor, rt: Runtime | None = None, cells: int = 8) -> float:
    """A cheap FID on images pooled to cells×cells (per channel): the validation signal while training, not the
    reported metric (that one uses a trained feature network: `generate eval`). Given the runtime, over every
    rank's images (`gather`)."""
    from mmkit.metrics.generation import fid_from_features

    def feats(x):
        return F.adaptive_avg_pool2d(x.float(), cells).flatten(1)

    pooled = (feats(real), feats(fake))
    return fid_from_features(*(gather(rt, *pooled) if rt is not None else pooled))


def gather(rt: Runtime, *tensors: torch.Tensor) -> list[torch.Tensor]:
    """Each of `tensors` concatenated over the ranks, in rank order: under DDP validation then scores the whole
    split, and every rank gets the same metrics."""
    if not rt.distributed:
        return list(tensors)
    ranks = rt.gather_objects([t.cpu() for t in tensors])
    return [torch.cat([r[i] for r in ranks]).to(t.device) for i, t in enumerate(tensors)]


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images to [0, 1], the range PSNR and SSIM are taken on (`mmkit.metrics.generation.Fidelity`)."""
    return (x + 1) / 2


def write_eval(result: dict[str, Any], out: str | Path | None) -> Path:
    """Write `result` as metrics.json in `out` (default: a new runs/generate/eval folder); returns the folder."""
    from mmkit.engine.logger import next_run_dir

    out_dir = Path(out) if out is not None else next_run_dir("runs", "generate", "eval", False)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    return out_dir


def as_output(a: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """An input shown beside outputs: resized (nearest) to their size and channels."""
    if a.shape[-1] != like.shape[-1]:
        a = F.interpolate(a, size=like.shape[-2:], mode="nearest")
    if a.shape[1] != like.shape[1]:
        a = a.expand(-1, like.shape[1], -1, -1) if a.shape[1] == 1 else a.mean(1, keepdim=True)
    return a


def baseline(a: torch.Tensor, b: torch.Tensor) -> tuple[str, torch.Tensor] | None:
    """What a model mapping inputs `a` to targets `b` must beat: bicubic upscaling when `a` is a smaller image of
    `b`, the input itself when they have one shape (a one-channel input, as gray -> colour or edges -> photos, in
    every channel of `b`), none otherwise."""
    from mmkit.metrics.generation import bicubic_upscale

    if a.shape[:2] == b.shape[:2] and a.shape[-1] < b.shape[-1]:
        return "bicubic upscaling", bicubic_upscale(a, b.shape[-1])
    if a.shape[1] == 1 and a.shape[1] != b.shape[1]:
        a = a.expand(-1, b.shape[1], -1, -1)
    if a.shape == b.shape:
        return "the input itself", a
    return None


@dataclass(eq=False)
class GenerateFamily(GenerateOptions, Task):
    """The engine Task of one generation family; its fields are the options of `mmkit generate train`.

    A family sets `MODELS` (name -> its `ModelSpec`), `build` (the network a `GenerateMeta` describes) and
    `builder_kwargs` (checks the data fits the model; the builder's arguments it implies), then trains as any
    engine Task does. Everything else (data, start weights, per-epoch grids, checkpoint meta, report) is here.
    """

    name = "generate"
    family: ClassVar[str] = ""
    MODELS: ClassVar[Mapping[str, ModelSpec]] = {}
    grid_caption: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if self.model not in self.MODELS:
            raise MMKitError(f"--model {self.model}: not one of the {self.family} ({', '.join(self.MODELS)})")
        if not self.data:
            raise MMKitError("--data is required (fashion-mnist, photo-sr, ..., or a folder)")
        self.data = str(self.data)
        self.model_kwargs = dict(self.model_kwargs or {})
        self.spec = self.MODELS[self.model]
        self.last_eval: dict[str, float] | None = None
        self.last_grid: Path | None = None

    # --- what a family defines --------------------------------------------------------------------------------------
    @classmethod
    def build(cls, meta: GenerateMeta) -> nn.Module:
        """The registered model that `meta` describes (untrained)."""
        raise NotImplementedError

    def builder_kwargs(self, d: GenerationData) -> dict[str, Any]:
        """The builder's keyword arguments for data `d` (`--model-arg` first); refuses data the model cannot use."""
        return dict(self.model_kwargs)

    def load_data(self, cfg) -> GenerationData:
        """The `--data` this family trains on (text-to-image: captioned images instead of generation data)."""
        return load_generation_data(self.data, self.spec.kind, self.img_size, seed=cfg.seed, crops=self.crops)

    def meta_classes(self, d: GenerationData) -> list[str]:
        """The labels the model draws (conditional GANs); none otherwise."""
        return []

    def grid(self, net: nn.Module, dev: torch.device) -> tuple[torch.Tensor, int, list[str] | None]:
        """The per-epoch picture: images in [-1, 1], images per row, optional captions."""
        raise NotImplementedError

    # --- building ---------------------------------------------------------------------------------------------------
    def setup(self, cfg, rt: Runtime) -> None:
        info = get_model_info(self.model)
        if info.task != "generate":
            raise MMKitError(f"--model {self.model}: a {info.task} model, not a generation model")
        self.dataset: GenerationData = self.load_data(cfg)
        d = self.dataset
        self.train_ds, self.val_ds = d.train, d.test
        kwargs = self.builder_kwargs(d)
        self.meta = GenerateMeta(
            self.model,
            self.data,
            self.spec.kind,
            d.channels,
            d.img_size,
            d.channels_a,
            d.size_a,
            self.meta_classes(d),
            kwargs.get("latent_dim", 0),
            kwargs,
        )
        self.net = self.build(self.meta)
        if self.weights:
            path = Path(self.weights)
            ck = load_task_checkpoint(path, "generate", "a generation model")
            load_model_state(self.net, ck["model"], path, self.model)
        if rt.is_main:
            log.info("%s; %s", d.summary(), self.model)

    # --- outputs ----------------------------------------------------------------------------------------------------
    def on_epoch_end(self, epoch: int, run_dir: Path | None, rt: Runtime) -> None:
        if run_dir is None:
            return
        from mmkit.report import save_image_grid

        net = self.net
        was_training = net.training
        net.eval()
        with torch.no_grad():
            grid, nrow, labels = self.grid(net, rt.device)
        net.train(was_training)
        self.last_grid = save_image_grid(
            to_uint8(grid.cpu()), run_dir / "samples" / f"epoch_{epoch:03d}.png", nrow=nrow, labels=labels,
            title=f"{self.model}, epoch {epoch}",
        )  # fmt: skip

    def checkpoint_meta(self) -> dict[str, Any]:
        return asdict(self.meta)

    def report_sections(self, run_dir: Path, rt):
        from mmkit.report import Section

        sections = []
        if self.last_grid is not None:
            sections.append(Section("Samples (last epoch)", images=[(self.last_grid, self.grid_caption)]))
        if self.last_eval:
            rows = [[k, round(float(v), 4)] for k, v in self.last_eval.items()]
            sections.append(Section("Validation (last epoch)", table=(["metric", "value"], rows)))
        return sections


class ImageToImage(GenerateFamily):
    """Translation and restoration: a network from input images a to output images b, trained on (a, b) pairs
    (or unpaired sets), shown as input | output | target."""

    grid_caption = "input | output | target, test images"

    @classmethod
    def translate(cls, net: nn.Module, meta: GenerateMeta, a: torch.Tensor) -> torch.Tensor:
        """The output in [-1, 1] for inputs `a` in [-1, 1]."""
        return net(a).clamp(-1, 1)

    def outputs(self, net: nn.Module, loader, dev: torch.device):
        """(a, b, output) batches of the validation pairs, in [-1, 1]."""
        for a, b in loader:
            a, b = to_signed(a.to(dev)), to_signed(b.to(dev))
            yield a, b, self.translate(net, self.meta, a)

    def grid(self, net, dev):
        rows = []
        for i in range(min(8, len(self.dataset.test))):
            a, b = (to_signed(t[None].to(dev)) for t in self.dataset.test[i])
            fake = self.translate(net, self.meta, a)
            rows += [as_output(a, fake), fake, b]
        return torch.cat(rows), 3, None


class TrainingState(nn.Module):
    """What adversarial training carries beside the weights, for an exact `--resume`: the count of training steps
    (whose turn it is beside a Wasserstein critic) and the image pools of the unpaired translation models (CycleGAN's
    history of fakes, `mmkit.models.translation.ImagePool`).

    A module without parameters, so that the engine checkpoints it with the task's other modules (as the module
    "state"); what it holds is the module's extra state. Under DDP each rank has its own pools (its own fakes, its
    own random draws, as the engine keeps one RNG state per rank): `gather` collects every rank's at the end of an
    epoch, rank 0 saves them all, and a resume on as many ranks gives each rank its own back (on another number of
    ranks, every rank starts from rank 0's)."""

    def __init__(self, rt: Runtime) -> None:
        super().__init__()
        self.rt = rt
        self.steps = 0  # training steps of this process
        self.pools: list = []  # ImagePools (translation's A and B fakes), set by the family
        self.ranks_pools: list[list[dict]] | None = None  # every rank's pools, as of the last `gather`

    def gather(self) -> None:
        """Collect every rank's pools (a collective: call it on every rank)."""
        self.ranks_pools = self.rt.gather_objects([p.state_dict() for p in self.pools])

    def get_extra_state(self) -> dict[str, Any]:
        mine = [p.state_dict() for p in self.pools]
        return {"steps": self.steps, "pools": self.ranks_pools or [mine]}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        ranks = state["pools"]
        mine = ranks[self.rt.rank] if len(ranks) == self.rt.world_size else ranks[0]
        for pool, saved in zip(self.pools, mine, strict=True):
            pool.load_state_dict({**saved, "images": saved["images"].to(self.rt.device)})


class AdversarialFamily(GenerateFamily):
    """A family trained adversarially (GANs, translation, text to image) on the engine's manual-optimization path,
    validated by a pixel FID unless it says otherwise. Its training state (`TrainingState`) is the module "state"."""

    manual_optimization = True
    monitor = ("val/fid_pix", "min")

    def setup(self, cfg, rt: Runtime) -> None:
        super().setup(cfg, rt)
        self.state = TrainingState(rt)

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.net, "state": self.state}

    def optimizers(self, cfg) -> dict[str, torch.optim.Optimizer]:
        """The generator(s)' ("model") and discriminator(s)' ("disc") optimizers as the model's paper has them
        (`AdversarialSpec`): Adam with its betas, or RMSprop with PyTorch's defaults (the WGAN code's), at cfg.lr."""
        spec = self.spec

        def make(params) -> torch.optim.Optimizer:
            if spec.optimizer == "rmsprop":
                return torch.optim.RMSprop(params, lr=cfg.lr)
            return torch.optim.Adam(params, lr=cfg.lr, betas=spec.betas)

        return {
            "model": make(self.net.generator_parameters()),
            "disc": make(self.net.discriminator_parameters()),
        }

    def generator_turn(self) -> bool:
        """Counts a training step; whether the generator trains in it: always, or every n_critic-th step beside a
        Wasserstein critic."""
        self.state.steps += 1
        return not self.spec.critic or self.state.steps % self.n_critic == 0

    def critic_stepped(self, *critics: nn.Module) -> None:
        """After the discriminators' optimizer step: WGAN's clipping of their weights to [-c, c]."""
        if self.spec.critic == "clip":
            from mmkit.models.gans import clip_weights

            clip_weights(*critics, c=self.weight_clip)

    def on_epoch_end(self, epoch: int, run_dir: Path | None, rt: Runtime) -> None:
        self.state.gather()  # before the checkpoint that rank 0 writes next
        super().on_epoch_end(epoch, run_dir, rt)
