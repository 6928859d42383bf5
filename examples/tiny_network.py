"""Course module 1 in code: a tiny neural network on the digits, trained by mmkit's engine.

    python examples/tiny_network.py                       # 20 epochs, under a minute on a CPU
    python examples/tiny_network.py --optimizer sgd --lr 0.1 --init he
    python examples/tiny_network.py --quick               # 2 epochs (what tests/test_docs.py runs)

The network is a multi-layer perceptron: 8x8 pixels -> 64 inputs -> Linear -> ReLU -> Linear -> 10 class scores.
A `Task` says what the model, the data and the loss are; the `Trainer` does the rest (batches, backward pass,
optimizer and learning-rate steps, checkpoints, metrics.csv, curves.png, TensorBoard, report.html).
The run is written to <project>/tiny/<name>/ (default runs/tiny/exp).
"""

from __future__ import annotations

import argparse
import logging

import torch
import torch.nn.functional as F
from torch import nn

from mmkit.data import load_classification_data
from mmkit.engine import Task, TrainConfig, Trainer


class TinyMLPTask(Task):
    """Digits (1,797 8x8 grey images, 10 classes) classified by a two-layer perceptron."""

    name = "tiny"  # runs go to <project>/tiny/<name>/
    monitor = ("val/acc", "max")  # best.pt is the epoch with the highest validation accuracy

    def __init__(self, hidden: int = 64) -> None:
        self.hidden = hidden

    def setup(self, cfg: TrainConfig, rt) -> None:
        """Build the datasets and the network; the base `Task` hands `self.net` (trained and checkpointed as
        "model"), `self.train_ds` and `self.val_ds` to the Trainer."""
        data = load_classification_data("digits", val_split=0.1, seed=cfg.seed)
        self.train_ds, self.val_ds = data.train, data.val  # items: (uint8 image [1, 8, 8], label)
        self.net = nn.Sequential(
            nn.Flatten(),  # [B, 1, 8, 8] -> [B, 64]
            nn.Linear(64, self.hidden),  # a fully connected layer: y = x W^T + b
            nn.ReLU(),  # the activation function
            nn.Linear(self.hidden, 10),  # one score (logit) per class
        )

    @staticmethod
    def _logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return model(images.float() / 255)  # pixels 0..255 -> 0..1

    def loss(self, model, batch):
        images, labels = batch
        logits = self._logits(model, images)
        loss = F.cross_entropy(logits, labels)  # softmax + negative log-likelihood
        return loss, {"acc": (logits.argmax(1) == labels).float().mean() * 100}

    @torch.no_grad()
    def evaluate(self, model, loader, rt):
        correct = torch.zeros((), device=rt.device)
        total = torch.zeros((), device=rt.device)
        for images, labels in loader:
            images, labels = rt.move((images, labels))
            correct += (self._logits(model, images).argmax(1) == labels).sum()
            total += len(labels)
        rt.all_reduce_([correct, total])  # sums over processes when run with torchrun
        return {"val/acc": (100 * correct / total).item()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--optimizer", default="adam", help="sgd | adam | adamw | rmsprop | rprop | lbfgs")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--init", default=None, help="xavier | he (default: PyTorch's own initialization)")
    p.add_argument("--hidden", type=int, default=64, help="hidden units")
    p.add_argument("--project", default="runs")
    p.add_argument("--name", default="exp")
    p.add_argument("--quick", action="store_true", help="2 epochs: a smoke test")
    args = p.parse_args()
    logging.basicConfig(format="%(message)s")
    logging.getLogger("mmkit").setLevel(logging.INFO)  # the engine's per-epoch lines

    cfg = TrainConfig(
        task="tiny",
        project=args.project,
        name=args.name,
        exist_ok=True,
        epochs=2 if args.quick else args.epochs,
        batch_size=32,
        optimizer=args.optimizer,
        lr=args.lr,
        init=args.init,
        weight_decay=0.0,
        device="cpu",  # a network this small is fastest on the CPU
    )
    result = Trainer(TinyMLPTask(args.hidden), cfg).fit()
    if result.run_dir is None:  # the other processes under torchrun
        return
    print(
        f"tiny network: best val/acc {result.best_value:.1f}% (epoch {result.best_epoch} of {result.epochs}) "
        f"-> {result.run_dir}"
    )


if __name__ == "__main__":
    main()
