"""The classification losses the survey names: NLL on a LogSoftmax output (`--loss nll`) and knowledge distillation
with the KL divergence (`--teacher`), as functions on fixed logits and through `mmkit classify train` on digits."""

import json
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from _cli import mmkit, run_fixture

from mmkit.engine import Runtime, load_checkpoint, save_checkpoint
from mmkit.losses.classification import distillation_loss, nll_loss
from mmkit.tasks.classify import ClassifierPredictor
from mmkit.tasks.classify.predictor import ClassifierMeta
from mmkit.tasks.classify.task import ClassifyTask

SHORT = ("--data", "digits", "--epochs", "2", "--device", "cpu", "--json")
# a teacher at another input size than the student's 16 px: the student's batch is resized for it
teacher_run = run_fixture("classify", *SHORT, "--img-size", "12")


def fit_of(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def setup_task(**options) -> ClassifyTask:
    task = ClassifyTask(data="digits", **options)
    task.setup(SimpleNamespace(seed=0, channels_last=False), Runtime(torch.device("cpu")))
    return task


def a_batch(task: ClassifyTask, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    items = [task.train_ds[i] for i in range(n)]
    return torch.stack([x for x, _ in items]), torch.tensor([int(y) for _, y in items])


# --- NLL -------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_nll_on_log_softmax_is_cross_entropy_on_logits(smoothing):
    torch.manual_seed(0)
    logits = torch.randn(8, 5, requires_grad=True)
    y = torch.randint(0, 5, (8,))
    nll = nll_loss(F.log_softmax(logits, 1), y, smoothing)
    ce = F.cross_entropy(logits, y, label_smoothing=smoothing)
    (g_nll,) = torch.autograd.grad(nll, logits)
    (g_ce,) = torch.autograd.grad(ce, logits)
    torch.testing.assert_close(nll, ce)
    torch.testing.assert_close(g_nll, g_ce)
    if smoothing:  # smoothing changes the loss: it is not the plain NLL
        assert not torch.isclose(nll, F.nll_loss(F.log_softmax(logits, 1), y))


def test_nll_task_has_a_log_softmax_output_and_the_same_loss_for_the_same_weights():
    ce, nll = setup_task(label_smoothing=0.1), setup_task(criterion="nll", label_smoothing=0.1)
    nll.net.load_state_dict(ce.net.state_dict())
    ce.net.eval(), nll.net.eval()
    x, y = a_batch(ce)
    with torch.no_grad():
        logits, log_probs = ce.net(ce.prepare(x, False)), nll.net(nll.prepare(x, False))
    torch.testing.assert_close(log_probs, F.log_softmax(logits, 1))
    torch.testing.assert_close(log_probs.exp().sum(1), torch.ones(len(x)))
    torch.manual_seed(1)  # the same random crops for both
    loss_ce, _ = ce.loss(ce.net, (x, y))
    torch.manual_seed(1)
    loss_nll, _ = nll.loss(nll.net, (x, y))
    torch.testing.assert_close(loss_nll, loss_ce)


def test_bad_loss_name_is_one_line(capsys, tmp_path):
    code, _, err = mmkit(capsys, "classify", "train", *SHORT, "--loss", "hinge", "--project", tmp_path)
    assert code == 2 and "--loss hinge: choose one of ce, nll" in err and "Traceback" not in err


def test_training_with_nll_learns_and_its_checkpoint_gives_the_same_probabilities(capsys, tmp_path):
    code, out, _ = mmkit(capsys, "classify", "train", *SHORT, "--loss", "nll", "--project", tmp_path)
    assert code == 0
    fit = fit_of(out)
    assert fit["metrics"]["val/top1"] > 70  # chance: 10
    p = ClassifierPredictor.load(tmp_path / "classify" / "exp" / "best.pt")
    trained = setup_task(criterion="nll")  # the training network: the same weights and its LogSoftmax
    trained.net.load_state_dict(p.net.state_dict())
    trained.net.eval()
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(p.net(x).softmax(1), trained.net(x).exp())
    r = p.evaluate("digits", out=tmp_path / "eval", workers=0)
    assert r["top1"] > 70


# --- Knowledge distillation --------------------------------------------------------------------------------------------


def test_distillation_loss_is_hintons_on_hand_computed_logits():
    student, teacher, t = [1.0, 2.0, 0.5], [3.0, 0.0, 1.0], 2.0

    def softmax(z):
        e = [math.exp(v / t) for v in z]
        return [v / sum(e) for v in e]

    ps, pt = softmax(student), softmax(teacher)
    want = t * t * sum(q * math.log(q / p) for p, q in zip(ps, pt, strict=True))  # KL(teacher || student)
    s, te = torch.tensor([student, teacher[::-1]]), torch.tensor([teacher, teacher[::-1]])
    got = distillation_loss(s, te, t)
    # the batch mean: the second row agrees with its teacher exactly
    assert got.item() == pytest.approx(want / 2, rel=1e-6)
    # F.kl_div's conventions: input the student's log-probabilities, target the teacher's (log_target=True) or
    # its probabilities; "batchmean" is the sum over batch and classes divided by the batch only
    ls, lt = F.log_softmax(s / t, 1), F.log_softmax(te / t, 1)
    assert F.kl_div(ls, lt.exp(), reduction="batchmean").item() * t * t == pytest.approx(want / 2, rel=1e-6)
    assert F.kl_div(ls, lt, reduction="sum", log_target=True).item() * t * t == pytest.approx(want, rel=1e-6)
    reverse = t * t * sum(p * math.log(p / q) for p, q in zip(ps, pt, strict=True))  # KL(student || teacher)
    assert abs(reverse - want) > 0.1 and got.item() != pytest.approx(reverse / 2, rel=1e-3)


def test_distillation_gradient_is_t_times_the_softened_probability_gap():
    torch.manual_seed(0)
    student, teacher, t = torch.randn(4, 6, requires_grad=True), torch.randn(4, 6), 3.0
    (grad,) = torch.autograd.grad(distillation_loss(student, teacher, t), student)
    want = t * ((student / t).softmax(1) - (teacher / t).softmax(1)) / 4
    torch.testing.assert_close(grad, want.detach())
    # softmax ignores a shift: log-probabilities (a --loss nll student) distill as their logits do
    shifted = distillation_loss(F.log_softmax(student, 1), teacher + 5, t)
    torch.testing.assert_close(shifted, distillation_loss(student, teacher, t))


def test_the_teacher_is_frozen_and_gets_no_gradient(teacher_run):
    task = setup_task(teacher=str(teacher_run / "best.pt"), width=0.5)
    assert not task.teacher_net.training and task.kd_weight == 0.5 and task.kd_temperature == 4.0
    assert all(not p.requires_grad for p in task.teacher_net.parameters())
    before = {k: v.clone() for k, v in task.teacher_net.state_dict().items()}
    loss, logs = task.loss(task.net, a_batch(task))
    loss.backward()
    assert all(p.grad is None for p in task.teacher_net.parameters())
    assert all(p.grad is not None for p in task.net.parameters())
    assert logs["kd"] > 0
    after = task.teacher_net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm statistics too: eval mode


def test_teacher_view_renormalizes_resizes_and_copies_channels(teacher_run):
    task = setup_task(teacher=str(teacher_run / "best.pt"))
    task.teacher_meta = ClassifierMeta(
        "smallcnn", 10, 3, 16, [0.1, 0.2, 0.3], [0.5, 0.6, 0.7], task.meta.classes
    )
    raw = torch.rand(2, 1, 16, 16)
    x = (raw - task.meta.mean[0]) / task.meta.std[0]
    want = (raw.expand(-1, 3, -1, -1) - torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)) / torch.tensor(
        [0.5, 0.6, 0.7]
    ).view(1, 3, 1, 1)
    torch.testing.assert_close(task.teacher_view(x), want)
    task.teacher_meta = ClassifierMeta(**{**vars(task.meta), "img_size": 32})
    assert task.teacher_view(x).shape == (2, 1, 32, 32)
    task.teacher_meta = task.meta
    assert task.teacher_view(x) is x


def test_a_short_distillation_run_trains(teacher_run, capsys, tmp_path):
    code, out, _ = mmkit(
        capsys, "classify", "train", *SHORT, "--teacher", teacher_run / "best.pt", "--kd-weight", "0.7",
        "--kd-temperature", "2", "--width", "0.5", "--project", tmp_path,
    )  # fmt: skip
    assert code == 0
    m = fit_of(out)["metrics"]
    assert m["val/top1"] > 60 and math.isfinite(m["train/kd"]) and m["train/kd"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--teacher", "missing.pt"], "--teacher missing.pt: no such checkpoint file"),
        (["--kd-weight", "0.3"], "--kd-weight and --kd-temperature need --teacher"),
        (["--teacher", "TEACHER", "--kd-weight", "1.5"], "--kd-weight 1.5: must be between 0 and 1"),
        (["--teacher", "TEACHER", "--kd-temperature", "0"], "--kd-temperature 0.0: must be positive"),
        (["--teacher", "OTHER"], "OTHER: its 10 classes (zero, one, two, three, ...) are not digits's 10 (0, 1, 2, 3, ...)"),
    ],
)  # fmt: skip
def test_a_teacher_that_does_not_fit_is_one_line(args, message, teacher_run, capsys, tmp_path):
    other = tmp_path / "other.pt"
    ck = load_checkpoint(teacher_run / "best.pt")
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    save_checkpoint({**ck, "meta": {**ck["meta"], "classes": names}}, other)
    paths = {"TEACHER": str(teacher_run / "best.pt"), "OTHER": str(other)}
    args = [paths.get(a, a) for a in args]
    code, _, err = mmkit(capsys, "classify", "train", *SHORT, *args, "--project", tmp_path)
    assert code == 2 and "Traceback" not in err
    assert message.replace("OTHER", str(other)) in " ".join(err.split())
