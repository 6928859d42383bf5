"""Generation under DDP and the adversarial families' exact resume (issue 19).

Two CPU processes (gloo, under torchrun) train a tiny DCGAN and a tiny CycleGAN: every rank ends with the same
weights and buffers, the ones rank 0's last.pt holds, and last.pt keeps each rank's own CycleGAN image pools. In one
process a CycleGAN run stopped and resumed ends where an uninterrupted one does: last.pt holds the pools the run had
(full, so the resumed run replays stored fakes) and its step count.

Run as a script (`torchrun ... test_generate_ddp.py OUT MODEL`) it is the torchrun side: each rank trains MODEL and
writes what it ended with to OUT/MODEL/rank<r>.pt (one model a launch: a process group is set up once a process).
"""

import os
import subprocess
import sys
from pathlib import Path

import torch

from mmkit.engine import Trainer, load_checkpoint
from mmkit.tasks.registry import get_task

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
TINY = {"epochs": 2, "max_steps": 2, "batch_size": 4, "threads": 1, "device": "cpu", "exist_ok": True}
MODELS = {  # model: its data and options
    "dcgan": ("digits", {"img_size": 16, "model_kwargs": {"base": 8}}),
    "cyclegan": (
        "day-tinted",
        {"img_size": 16, "crops": 16, "model_kwargs": {"ngf": 4, "ndf": 4, "n_blocks": 1}},
    ),
}
FILLING = {
    "crops": 32,
    "batch_size": 8,
    "max_steps": 4,
}  # CycleGAN: 32 fakes an epoch fill its pools of 50 in epoch 2


def fit(model: str, project: Path, name: str | None = None, **overrides) -> Trainer:
    spec = get_task("generate")
    data, options = MODELS[model]
    options = {**TINY, **options, **overrides}
    cfg = spec.train_config(data, model=model, **options, project=str(project), name=name or model)
    trainer = Trainer(spec.make_task(cfg.task_args), cfg, progress=False)
    trainer.fit()
    return trainer


def pool_images(pools) -> list[torch.Tensor]:
    return [p.state_dict()["images"] for p in pools]


def test_two_ranks_train_a_gan_and_a_cyclegan_to_the_same_weights(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    logs, launches = {model: tmp_path / f"{model}.log" for model in MODELS}, {}
    for model, log in logs.items():  # side by side
        with log.open("w") as out:
            cmd = [*TORCHRUN, __file__, str(tmp_path), model]
            launches[model] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    for model, launch in launches.items():
        assert launch.wait(timeout=300) == 0, logs[model].read_text()[-3000:]
        run = tmp_path / "generate" / model
        ck = load_checkpoint(run / "last.pt")
        ranks = [torch.load(tmp_path / model / f"rank{i}.pt") for i in range(2)]
        assert ck["epoch"] == 2 and (run / "samples" / "epoch_002.png").is_file()
        assert [w["steps"] for w in ranks] == [4, 4]  # 2 epochs of 2 steps, each rank on half of every batch
        for k, v in ck["model"].items():  # parameters and buffers (BatchNorm statistics): rank 0's everywhere
            assert torch.equal(ranks[0]["model"][k], v) and torch.equal(ranks[1]["model"][k], v), k
        saved = ck["modules"]["state"]["_extra_state"]
        assert saved["steps"] == 4
        assert len(saved["pools"]) == 2  # one set of pools per rank, each rank's own
        for i, w in enumerate(ranks):
            assert len(w["pools"]) == len(saved["pools"][i]) == (2 if model == "cyclegan" else 0)
            for images, pool in zip(w["pools"], saved["pools"][i], strict=True):
                assert len(images) == 8 and torch.equal(
                    images, pool["images"]
                )  # 4 steps x 2 fakes: this rank's
        if model == "cyclegan":  # the ranks translated different images
            assert not torch.equal(ranks[0]["pools"][0], ranks[1]["pools"][0])


def test_a_resumed_cyclegan_continues_exactly_from_the_pools_in_last_pt(tmp_path):
    cut = fit("cyclegan", tmp_path, "cut", **FILLING, epochs=2)
    last = tmp_path / "generate" / "cut" / "last.pt"
    saved = load_checkpoint(last)["modules"]["state"]["_extra_state"]
    assert saved["steps"] == 8 and len(saved["pools"]) == 1  # one process
    kept = pool_images(cut.task.pools)
    assert [len(p) for p in kept] == [50, 50]  # full: from now on fakes are swapped for stored ones at random
    for images, pool in zip(kept, saved["pools"][0], strict=True):
        assert torch.equal(images, pool["images"])
    resumed = Trainer(get_task("generate").make_task(cut.cfg.task_args), cut.cfg.replace(epochs=3), resume=last,
                      progress=False)  # fmt: skip
    resumed.fit()
    straight = fit("cyclegan", tmp_path, "whole", **FILLING, epochs=3)
    assert resumed.task.state.steps == straight.task.state.steps == 12
    for k, v in straight.task.net.state_dict().items():
        assert torch.equal(resumed.task.net.state_dict()[k], v), k
    for a, b in zip(pool_images(resumed.task.pools), pool_images(straight.task.pools), strict=True):
        assert torch.equal(a, b)


if __name__ == "__main__":  # the torchrun side of the DDP test: python -m torch.distributed.run ... OUT MODEL
    out, name = Path(sys.argv[1]), sys.argv[2]
    trainer = fit(name, out)
    task = trainer.task
    mine = {"model": task.net.state_dict(), "steps": task.state.steps, "pools": pool_images(task.state.pools)}
    (out / name).mkdir(parents=True, exist_ok=True)
    torch.save(mine, out / name / f"rank{trainer.rt.rank}.pt")
