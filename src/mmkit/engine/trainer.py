"""The one training loop, shared by every task."""

from __future__ import annotations

import gc
import logging
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, Dataset, Sampler

from mmkit.console import console
from mmkit.engine import checkpoint as ckpt_io
from mmkit.engine.averaging import WeightAverage, build_average, check_averaging, recompute_bn
from mmkit.engine.config import TrainConfig
from mmkit.engine.logger import RunLogger, check_run_name, next_run_dir
from mmkit.engine.optim import build_scheduler, init_weights, load_scheduler_state
from mmkit.engine.runtime import (
    Runtime,
    get_rng_state,
    seed_everything,
    set_rng_state,
    setup_runtime,
    teardown_runtime,
)
from mmkit.engine.task import Task
from mmkit.errors import Interrupted, MMKitError, TrainingDiverged, stop_if_interrupted

log = logging.getLogger(__name__)


class EpochSampler(Sampler[int]):
    """Seeded per-epoch order, split across ranks by stride so that N ranks see, batch for batch, the samples one
    process would see with an N-times larger batch. Training drops the tail that does not divide evenly."""

    def __init__(
        self, n: int, *, shuffle: bool, seed: int, rank: int = 0, world: int = 1, drop_tail: bool = True
    ):
        self.n, self.shuffle, self.seed, self.rank, self.world, self.drop_tail = (
            n,
            shuffle,
            seed,
            rank,
            world,
            drop_tail,
        )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> torch.Tensor:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            idx = torch.randperm(self.n, generator=g)
        else:
            idx = torch.arange(self.n)
        if self.drop_tail:
            idx = idx[: self.n - self.n % self.world]
        return idx[self.rank :: self.world]

    def __iter__(self):
        return iter(self._indices().tolist())

    def __len__(self) -> int:
        return len(self._indices())


def _batch_len(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    if isinstance(batch, (list, tuple)) and batch:
        return _batch_len(batch[0])
    if isinstance(batch, dict) and batch:
        return _batch_len(next(iter(batch.values())))
    return 0


class StepContext:
    """What a manual-optimization task uses inside `training_step`: the models, autocast, and backward/step that
    honour precision, gradient scaling, clipping, the LR schedule and, under DDP, the ranks: the models are not
    wrapped (a task may call their submodules, such as `net.generator`), and `step` first averages the gradients of
    its optimizer's parameters over the ranks."""

    def __init__(self, trainer: Trainer) -> None:
        self._t = trainer
        self.models: dict[str, nn.Module] = trainer.train_models
        self.optimizers = trainer.optimizers
        self.rt = trainer.rt

    def autocast(self):
        return self.rt.autocast()

    def backward(self, loss: torch.Tensor, optimizer: str = "model", retain_graph: bool = False) -> None:
        self._t.scalers[optimizer].scale(loss).backward(retain_graph=retain_graph)

    def step(self, optimizer: str = "model") -> None:
        self._t._optimizer_step(optimizer)


@dataclass
class FitResult:
    run_dir: Path | None
    epochs: int
    best_metric: str
    best_value: float | None
    best_epoch: int | None
    last_metrics: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False
    seconds: float = 0.0


class Trainer:
    """Drives a `Task` for `cfg.epochs` epochs. `resume` is the path of a last.pt to continue exactly."""

    def __init__(
        self, task: Task, cfg: TrainConfig, *, resume: str | Path | None = None, progress: bool = True
    ):
        self.task, self.cfg, self.progress = task, cfg, progress
        self.resume_path = Path(resume) if resume else None
        self.rt: Runtime | None = None
        self.global_step = 0
        self.saved_epoch: int | None = None  # the epoch run_dir/last.pt holds
        self.average: WeightAverage | None = None  # --ema / --swa-from

    # ----------------------------------------------------------------------------------------------------------------
    def fit(self) -> FitResult:
        cfg = self.cfg
        resume_state = ckpt_io.load_checkpoint(self.resume_path) if self.resume_path else None
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        rt = self.rt = setup_runtime(cfg.device, cfg.precision, cfg.channels_last)
        try:
            result = self._fit(rt, resume_state)
        except BaseException:
            self._release_wrappers()
            teardown_runtime(rt, clean=False)
            raise
        self._release_wrappers()
        teardown_runtime(rt)
        return result

    def _release_wrappers(self) -> None:
        """Free the DDP wrappers now. Each holds the process group: left to the interpreter's exit, gloo's threads
        are torn down after Python and the rank aborts ("terminate called without an active exception")."""
        if self.rt is not None and self.rt.distributed:
            getattr(self, "train_models", {}).clear()  # the step context shares this dict
            gc.collect()

    def _fit(self, rt: Runtime, resume_state: dict | None) -> FitResult:
        cfg, task = self.cfg, self.task
        t0 = time.perf_counter()
        if cfg.batch_size % rt.world_size:
            raise MMKitError(
                f"--batch-size {cfg.batch_size}: must divide evenly over {rt.world_size} processes"
            )
        if cfg.accumulate < 1:
            raise MMKitError("--accumulate must be at least 1")
        check_averaging(cfg)
        if self.resume_path is None:
            check_run_name(cfg.name)

        # Run directory: decided on rank 0, shared with the others.
        run_dir = None
        if self.resume_path is not None:
            run_dir = self.resume_path.parent
        elif rt.is_main:
            run_dir = next_run_dir(cfg.project, cfg.task, cfg.name, cfg.exist_ok)
        run_dir = Path(rt.broadcast_object(str(run_dir)))
        self.run_dir = run_dir

        seed_everything(cfg.seed)  # identical model initialization on every rank
        task.setup(cfg, rt)
        raw = task.modules()
        if cfg.init:
            for m in raw.values():
                init_weights(m, cfg.init)
        for m in raw.values():
            m.to(rt.device)
            if cfg.channels_last:
                m.to(memory_format=torch.channels_last)
        self.raw_modules = raw
        self.train_models = {k: self._wrap(m) for k, m in raw.items()}
        self.eval_models = {k: (torch.compile(m) if cfg.compile else m) for k, m in raw.items()}

        self.optimizers = task.optimizers(cfg)
        self.scalers = {
            k: torch.amp.GradScaler(rt.device.type, enabled=rt.precision == "fp16") for k in self.optimizers
        }
        train_loader, self.train_sampler = self._loader(task.train_dataset(), train=True)
        val_ds = task.val_dataset()
        val_loader = self._loader(val_ds, train=False)[0] if val_ds is not None and len(val_ds) else None
        steps = len(train_loader) if cfg.max_steps is None else min(len(train_loader), cfg.max_steps)
        if steps == 0:
            raise MMKitError(
                f"training set: too small for batch size {cfg.batch_size} ({len(train_loader.dataset)} samples)"
            )
        opt_steps = math.ceil(steps / cfg.accumulate)
        self.schedulers = {
            k: build_scheduler(
                o,
                cfg.schedule,
                epochs=cfg.epochs,
                steps_per_epoch=opt_steps,
                warmup_epochs=cfg.warmup,
                step_size=cfg.step_size,
                gamma=cfg.gamma,
            )
            for k, o in self.optimizers.items()
        }

        monitor, mode = task.monitor
        best_value, best_epoch, bad_epochs, start_epoch = None, None, 0, 0
        if resume_state is not None:
            start_epoch = self.saved_epoch = self._load_state(resume_state, rt)
            if start_epoch > cfg.epochs:
                raise MMKitError(
                    f"{self.resume_path}: holds {start_epoch} epochs, more than the {cfg.epochs} asked (--epochs)"
                )
            best = resume_state.get("best", {})
            best_value, best_epoch = best.get("value"), best.get("epoch")
            bad_epochs = resume_state.get("bad_epochs", 0)
            log.info("resuming %s from epoch %d", run_dir, start_epoch)
        else:
            seed_everything(cfg.seed + rt.rank)  # augmentation and dropout differ across ranks
        self.average = build_average(cfg, task, raw, self.optimizers)
        if self.average is not None:
            if resume_state is not None:
                self.average.load(resume_state.get("average"), resume_state["model"])
            module = self.average.module
            self.eval_average = torch.compile(module) if cfg.compile else module

        logger = None
        if rt.is_main:
            with _writing(run_dir):
                run_dir.mkdir(parents=True, exist_ok=True)
                # temporary files of writes that a killed run (kill -9) never finished
                for leftover in run_dir.glob("*.tmp"):
                    leftover.unlink()
                cfg.save(run_dir / "config.yaml")
                logger = RunLogger(run_dir, start_epoch=start_epoch)

        last_metrics: dict[str, float] = {}
        stopped_early = False
        progress = self._progress_bar(rt)
        epoch = start_epoch
        try:
            with progress or _null():
                for epoch in range(start_epoch, cfg.epochs):
                    e0 = time.perf_counter()
                    train_metrics = self._train_epoch(train_loader, steps, epoch, progress)
                    metrics = dict(train_metrics)
                    if self.average is not None and self.average.after_epoch(raw["model"], epoch + 1):
                        recompute_bn(self.average.module, islice(train_loader, steps), task.loss, rt)
                    if val_loader is not None:
                        for m in self.eval_models.values():
                            m.eval()
                        with torch.no_grad():
                            metrics.update(task.evaluate(self._eval_model(), val_loader, rt))
                    metrics["lr"] = next(iter(self.optimizers.values())).param_groups[0]["lr"]
                    metrics["time"] = time.perf_counter() - e0
                    last_metrics = metrics

                    key = monitor if monitor in metrics else "train/loss"
                    kmode = mode if key == monitor else "min"
                    value = metrics.get(key)
                    finite = value is not None and math.isfinite(value)
                    better = finite and (
                        best_value is None or (value > best_value if kmode == "max" else value < best_value)
                    )
                    # A tie moves best.pt to the later (longer trained) epoch, but is no progress for patience.
                    improved = better or (finite and value == best_value)
                    if improved:
                        best_value, best_epoch = value, epoch + 1
                    bad_epochs = 0 if better else bad_epochs + 1

                    task.on_epoch_end(epoch + 1, run_dir if rt.is_main else None, rt)
                    rng = rt.gather_objects(get_rng_state())
                    if rt.is_main:
                        log.info("epoch %d/%d  %s", epoch + 1, cfg.epochs, _fmt(metrics))
                        with _writing(run_dir):
                            logger.log_epoch(epoch + 1, metrics)
                            state = self._state(epoch + 1, metrics, best_value, best_epoch, bad_epochs, rng)
                            if improved:
                                ckpt_io.save_checkpoint(_weights_only(state), run_dir / "best.pt")
                            # last.pt last: what an interrupted run reports it kept is then on disk
                            ckpt_io.save_checkpoint(state, run_dir / "last.pt")
                    self.saved_epoch = epoch + 1
                    if cfg.patience is not None and bad_epochs >= cfg.patience:
                        stopped_early = True
                        if rt.is_main:
                            log.info("early stop: %s did not improve for %d epochs", key, cfg.patience)
                        break
            if rt.is_main and last_metrics:
                logger.plot()
                with _writing(run_dir):
                    self._write_report(run_dir, rt)
        except KeyboardInterrupt:
            kept = self._kept() + ("; --resume continues it" if self.saved_epoch else "")
            raise Interrupted(f"interrupted in epoch {epoch + 1}/{cfg.epochs}; {kept}") from None
        finally:
            if logger is not None:
                logger.close()
        return FitResult(
            run_dir if rt.is_main else None,
            len(logger.rows) if logger else cfg.epochs,
            monitor,
            best_value,
            best_epoch,
            last_metrics,
            stopped_early,
            time.perf_counter() - t0,
        )

    # ----------------------------------------------------------------------------------------------------------------
    def _wrap(self, m: nn.Module) -> nn.Module:
        rt = self.rt
        manual = self.task.manual_optimization  # its steps average the gradients themselves (StepContext)
        if rt.distributed and not manual and any(p.requires_grad for p in m.parameters()):
            m = DDP(m, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
        if self.cfg.compile:
            m = torch.compile(m)
        return m

    def _loader(self, ds: Dataset, *, train: bool) -> tuple[DataLoader, Any]:
        cfg, rt = self.cfg, self.rt
        per_rank = cfg.batch_size // rt.world_size
        workers = cfg.workers if cfg.workers is not None else self.task.default_workers()
        batches = (
            self.task.train_batch_sampler(cfg.batch_size, cfg.seed, rt.rank, rt.world_size) if train else None
        )
        if batches is not None:  # the task composes the batches (P identities x K images for metric learning)
            loader = DataLoader(
                ds,
                batch_sampler=batches,
                num_workers=workers,
                collate_fn=self.task.collate_fn(),
                pin_memory=rt.device.type == "cuda",
                persistent_workers=False,
            )
            return loader, batches
        sampler = EpochSampler(
            len(ds), shuffle=train, seed=cfg.seed, rank=rt.rank, world=rt.world_size, drop_tail=train
        )
        loader = DataLoader(
            ds,
            batch_size=per_rank,
            sampler=sampler,
            num_workers=workers,
            collate_fn=self.task.collate_fn(),
            pin_memory=rt.device.type == "cuda",
            drop_last=train and len(sampler) >= per_rank,
            # workers restart each epoch and take their seeds from the (checkpointed) global RNG: exact resume
            persistent_workers=False,
        )
        return loader, sampler

    def _train_epoch(self, loader: DataLoader, steps: int, epoch: int, progress) -> dict[str, float]:
        cfg, rt, task = self.cfg, self.rt, self.task
        for m in self.train_models.values():
            m.train()
        self.train_sampler.set_epoch(epoch)
        sums: dict[str, torch.Tensor] = {}
        seen = torch.zeros((), device=rt.device)
        n_steps = 0
        bar = progress.add_task(f"epoch {epoch + 1}/{cfg.epochs}", total=steps) if progress else None
        t0 = time.perf_counter()
        window_start = 0
        for i, batch in enumerate(loader):
            stop_if_interrupted()  # a Ctrl-C that a __del__ swallowed
            if i >= steps:
                break
            if batch is None:  # every image of the batch was unreadable (already reported by the dataset)
                continue
            batch = rt.move(batch)
            if task.manual_optimization:
                logs = task.training_step(StepContext(self), batch)
                self._broadcast_buffers()
            else:
                logs = self._automatic_step(batch, i, steps)
            for k, v in logs.items():
                v = v.detach().float()
                sums[k] = sums[k] + v if k in sums else v.clone()
            seen += _batch_len(batch)
            n_steps += 1
            if (i + 1) % cfg.log_every == 0 or i + 1 == steps:
                loss_sum = sums.get("loss")
                if loss_sum is not None:
                    value = float(loss_sum)  # the only host sync: every log_every steps
                    if not math.isfinite(value):
                        raise TrainingDiverged(
                            f"loss became {value} at epoch {epoch + 1}, step {window_start + 1}-{i + 1}; "
                            f"training stopped ({self._kept()})"
                        )
                    if bar is not None:
                        progress.update(
                            bar, description=f"epoch {epoch + 1}/{cfg.epochs} loss {value / n_steps:.4f}"
                        )
                window_start = i + 1
            if bar is not None:
                progress.advance(bar)
            self.global_step += 1
        if bar is not None:
            progress.remove_task(bar)
        elapsed = time.perf_counter() - t0
        names = sorted(sums)
        packed = torch.stack(
            [sums[k] for k in names] + [seen, torch.tensor(float(n_steps), device=rt.device)]
        )
        rt.all_reduce_([packed])
        total_steps = packed[-1].item()
        out = {f"train/{k}": (packed[j] / total_steps).item() for j, k in enumerate(names)}
        out["train/samples_per_s"] = packed[-2].item() / max(elapsed, 1e-9)
        return out

    def _automatic_step(self, batch: Any, i: int, steps: int) -> dict[str, torch.Tensor]:
        cfg, rt, task = self.cfg, self.rt, self.task
        model = self.train_models["model"]
        opt = self.optimizers["model"]
        if isinstance(opt, torch.optim.LBFGS):
            box: dict[str, Any] = {}

            def closure():
                opt.zero_grad(set_to_none=True)
                with rt.autocast():
                    loss, logs = task.loss(model, batch)
                loss.backward()
                box["loss"], box["logs"] = loss, logs
                return loss

            opt.step(closure)
            self._stepped("model")
            return {"loss": box["loss"], **box["logs"]}

        last_micro = (i + 1) % cfg.accumulate == 0 or i + 1 == steps
        sync_ctx = model.no_sync() if (isinstance(model, DDP) and not last_micro) else _null()
        with sync_ctx:
            with rt.autocast():
                loss, logs = task.loss(model, batch)
            self.scalers["model"].scale(loss / cfg.accumulate).backward()
        if last_micro:
            self._optimizer_step("model")
        return {"loss": loss, **logs}

    def _optimizer_step(self, name: str) -> None:
        opt, scaler = self.optimizers[name], self.scalers[name]
        if self.rt.distributed and self.task.manual_optimization:
            self._average_gradients(opt)
        if self.cfg.grad_clip:
            scaler.unscale_(opt)
            params = [p for g in opt.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        self._stepped(name)

    def _average_gradients(self, opt: torch.optim.Optimizer) -> None:
        """Manual optimization under DDP: the gradients of `opt`'s parameters become their mean over the ranks (one
        all-reduce), so every rank takes the same step, as DDP's wrapper makes it for automatic optimization. The
        ranks run the same code, so the same parameters have gradients on each."""
        grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.flatten() for g in grads])
        self.rt.all_reduce_([flat])
        flat /= self.rt.world_size
        for g, mean in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
            g.copy_(mean.view_as(g))

    def _broadcast_buffers(self) -> None:
        """Manual optimization under DDP: rank 0's buffers (BatchNorm statistics, a model's stage) to every rank after
        each training step, as DDP's wrapper sends them before each forward pass."""
        if self.rt.distributed:
            for m in self.raw_modules.values():
                for b in m.buffers():
                    dist.broadcast(b, src=0)

    def _stepped(self, name: str) -> None:
        """After a step of optimizer `name`: its learning-rate schedule, and the EMA of the model."""
        self.schedulers[name].step()
        if name == "model" and self.average is not None:
            self.average.after_step(self.raw_modules["model"])

    def _eval_model(self) -> nn.Module | None:
        """The model validation runs: the weight average once it holds one, else the trained model."""
        if self.average is not None and self.average.updates:
            return self.eval_average
        return self.eval_models.get("model")

    def _kept(self) -> str:
        """What a stopped run leaves behind: its last checkpoint, if it wrote one."""
        if self.saved_epoch is None:
            return "no checkpoint was written yet"
        return f"kept {self.run_dir / 'last.pt'} of epoch {self.saved_epoch}"

    # ----------------------------------------------------------------------------------------------------------------
    def _state(self, epoch, metrics, best_value, best_epoch, bad_epochs, rng) -> dict[str, Any]:
        raw, avg = self.raw_modules, self.average
        model = raw["model"].state_dict() if "model" in raw else None
        averaged = avg is not None and avg.updates > 0
        return {
            "format": ckpt_io.FORMAT,
            "version": ckpt_io.VERSION,
            "task": self.task.name,
            "epoch": epoch,
            "global_step": self.global_step,
            # what predictors load: the weight average once there is one (--ema, --swa-from)
            "model": avg.module.state_dict() if averaged else model,
            **({"trained_model": model} if averaged else {}),  # what --resume trains on from
            **({"average": avg.state()} if avg is not None else {}),
            "modules": {k: m.state_dict() for k, m in raw.items() if k != "model"},
            "meta": self.task.checkpoint_meta(),
            "config": self.cfg.to_dict(),
            "metrics": {k: float(v) for k, v in metrics.items()},
            "best": {"metric": self.task.monitor[0], "value": best_value, "epoch": best_epoch},
            "bad_epochs": bad_epochs,
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
            "rng": rng,
        }

    def _load_state(self, state: dict[str, Any], rt: Runtime) -> int:
        if state.get("task") != self.task.name:
            raise MMKitError(f"{self.resume_path}: a {state.get('task')} checkpoint, not {self.task.name}")
        if "optimizers" not in state:
            raise MMKitError(f"{self.resume_path}: holds weights only and cannot be resumed (use last.pt)")
        trained = state.get("trained_model", state.get("model"))  # "model" is the average when both are there
        if trained is not None:
            self.raw_modules["model"].load_state_dict(trained)
        for k, sd in state.get("modules", {}).items():
            self.raw_modules[k].load_state_dict(sd)
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            load_scheduler_state(s, state["schedulers"][k])
        for k, s in self.scalers.items():
            s.load_state_dict(state["scalers"][k])
        self.global_step = state.get("global_step", 0)
        rng = state.get("rng") or []
        if len(rng) == rt.world_size:
            set_rng_state(rng[rt.rank])
        else:
            log.warning(
                "resuming on %d processes from a run on %d: data order continues, augmentation RNG is reseeded",
                rt.world_size,
                len(rng),
            )
            seed_everything(self.cfg.seed + rt.rank + state["epoch"])
        return int(state["epoch"])

    def _progress_bar(self, rt: Runtime):
        if not (self.progress and rt.is_main):
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console(),
            transient=True,
        )

    def _write_report(self, run_dir: Path, rt: Runtime) -> None:
        from mmkit.report import Section, write_report

        cfg = self.cfg
        sections = [
            Section(
                "Training curves",
                images=[(run_dir / "curves.png", "loss, metrics and learning rate per epoch")],
            )
        ]
        sections += self.task.report_sections(run_dir, rt)
        rows = [[k, v] for k, v in cfg.to_dict().items() if k != "task_args"]
        rows += [[f"task.{k}", v] for k, v in cfg.task_args.items()]
        sections.append(Section("Configuration", table=(["option", "value"], rows)))
        write_report(
            run_dir / "report.html", f"mmkit {cfg.task}: {run_dir.name}", sections, subtitle=str(run_dir)
        )


@contextmanager
def _writing(run_dir: Path):
    """Turn a failure to write into the run folder (read-only, not a folder, disk full) into one line naming it."""
    try:
        yield
    except OSError as e:
        detail = f"{e.strerror}: {e.filename}" if e.strerror and e.filename else str(e)
        raise MMKitError(f"{run_dir}: cannot write the run folder ({detail})") from e


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _weights_only(state: dict[str, Any]) -> dict[str, Any]:
    drop = {"optimizers", "schedulers", "scalers", "rng", "trained_model"}
    return {k: v for k, v in state.items() if k not in drop}


def _fmt(metrics: dict[str, float]) -> str:
    """The epoch's log line: losses and validation metrics (everything else is in metrics.csv)."""
    keys = [k for k in metrics if k.endswith("loss") or k.startswith("val/")]
    keys = [k for k in keys if not k.endswith("mean_class_acc")] + ["time"]
    return "  ".join(f"{k} {metrics[k]:.4g}" for k in keys if k in metrics)
