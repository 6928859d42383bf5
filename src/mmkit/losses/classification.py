"""Classification losses named by the survey: the negative log-likelihood of log-softmax outputs, and knowledge
distillation with the KL divergence (Hinton et al. 2015).

    log_probs = F.log_softmax(logits, 1)                       # a LogSoftmax output layer
    loss = nll_loss(log_probs, labels)                         # == F.cross_entropy(logits, labels)
    loss = (1 - w) * F.cross_entropy(student, labels) + w * distillation_loss(student, teacher, temperature=4)

- NLL: ``-log p_y``, the mean over the batch (``F.nll_loss``). With label smoothing ε the target is
  ``(1 − ε)·onehot + ε/K``, and the loss ``(1 − ε)·NLL − ε·mean_k log p_k``: exactly what ``F.cross_entropy`` with
  ``label_smoothing=ε`` computes on logits, since log-softmax of log-probabilities gives them back unchanged.
- Distillation: ``T²·KL(softmax(teacher/T) ‖ softmax(student/T))``, summed over classes and averaged over the
  batch. The T² keeps its gradients on the scale of the hard-label term's as T changes (Hinton et al., section 2).
  Softmax ignores a constant added to every logit, so log-probabilities may stand for either model's logits.
  Computed in float32 with autocast disabled; the teacher's logits are detached.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["distillation_loss", "nll_loss"]


def nll_loss(log_probs: Tensor, target: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Mean negative log-likelihood of `target` [B] under `log_probs` [B, K], the target smoothed by ε if given."""
    nll = F.nll_loss(log_probs, target)
    if not label_smoothing:
        return nll
    return (1 - label_smoothing) * nll - label_smoothing * log_probs.mean(1).mean()


def distillation_loss(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """``T²·KL(softmax(teacher/T) ‖ softmax(student/T))`` over logits [B, K], the batch mean."""
    with torch.autocast(student.device.type, enabled=False):
        log_p_student = F.log_softmax(student.float() / temperature, 1)
        log_p_teacher = F.log_softmax(teacher.detach().float() / temperature, 1)
        kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2
