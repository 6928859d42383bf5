"""Mutation testing: do the tests notice a small deliberate bug in the modules whose numbers they must pin?

Each mutant is a one-line change (file under src/mmkit, the original text, its replacement) in the metrics, the
losses, box decoding and NMS, or the engine's training step. The script copies src/ to a temporary directory,
applies one mutant to the copy, and runs the test files that cover that code with PYTHONPATH pointing at the copy
(the working tree is never edited). The mutant is *killed* when the tests fail, and *survives* when they pass.
Before any mutant, each test selection runs once on the unmutated copy and must pass. Goal: no survivor.

    .venv/bin/python bench/mutation.py [--only NAME,...] [--list]

Writes bench/results/mutation.json and rewrites the table between the `mutation table` markers in
bench/README.md (with --only: mutation.quick.json, and the README stays as it is).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from common import environment, save_result

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "bench" / "README.md"
TIMEOUT_S = 900  # per pytest run; a mutant that hangs the tests counts as killed ("timeout")

# The tests that cover each module (pytest arguments, run from the repository root).
DETECT = ["tests/test_detect_known_boxes.py"]
DETECT_EVAL = ["tests/test_metrics_detection.py", *DETECT]
ENGINE = [
    "tests/test_engine.py",
    "-k",
    "clipping or autocast or accumulation or every_optimizer or precision",
]
TRIPLET = ["tests/test_metric_losses.py"]
YOLO_LOSS = ["tests/test_yolo_loss.py"]
LOCALIZER = ["tests/test_localizer.py"]
MATTING_LOSS = ["tests/test_matting_model.py"]
GENERATION = ["tests/test_generation_metrics.py"]
CLASSIFICATION = ["tests/test_metrics_classification.py"]
VERIFICATION = ["tests/test_verification.py"]
MATTING = ["tests/test_matting_metrics.py"]
VIDEO = ["tests/test_video_metrics.py"]


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str  # under src/mmkit
    original: str  # must occur exactly once in the file
    replacement: str
    tests: tuple[str, ...]


def m(name: str, file: str, original: str, replacement: str, tests: list[str]) -> Mutant:
    return Mutant(name, file, original, replacement, tuple(tests))


# fmt: off
MUTANTS = [
    # named in issue 22
    m("box size (2σ)³", "models/yolov3.py", "(t[..., 2:4].sigmoid() * 2) ** 2", "(t[..., 2:4].sigmoid() * 2) ** 3", DETECT),
    m("score threshold >=", "models/yolov3.py", "keep = scores > conf", "keep = scores >= conf", DETECT),
    m("multi-label threshold >=", "models/yolov3.py", "(scores_all > conf)", "(scores_all >= conf)", DETECT),
    m("postprocess NMS IoU 0.675", "models/yolov3.py", "    iou: float = 0.45,", "    iou: float = 0.675,", DETECT),
    m("predict NMS IoU 0.675", "tasks/detect/predictor.py", "        iou: float = 0.45,", "        iou: float = 0.675,", DETECT),
    m("detect predict --iou 0.675", "tasks/detect/cli.py", 'help="NMS IoU threshold.")] = 0.45,', 'help="NMS IoU threshold.")] = 0.675,', DETECT),
    m("evaluation conf 0.1", "tasks/detect/predictor.py", "EVAL_CONF, EVAL_IOU = 0.001, 0.6", "EVAL_CONF, EVAL_IOU = 0.1, 0.6", DETECT),
    m("gradient clipping never applied", "engine/trainer.py", "if self.cfg.grad_clip:", "if False:", ENGINE),
    m("autocast a no-op", "engine/runtime.py", "return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)", "return contextlib.nullcontext()", ENGINE),
    m("semi-hard d_an >= d_ap", "losses/metric.py", "(d[:, None, :] > d[:, :, None])", "(d[:, None, :] >= d[:, :, None])", TRIPLET),
    # box decoding, evaluation
    m("centre offset σ + cell", "models/yolov3.py", "xy = t[..., :2].sigmoid() * 2 - 0.5 + cell", "xy = t[..., :2].sigmoid() + cell", DETECT),
    m("class-agnostic NMS", "models/yolov3.py", "keep = batched_nms(boxes.float(), scores.float(), labels, iou)[:max_det]", "keep = batched_nms(boxes.float(), scores.float(), labels * 0, iou)[:max_det]", DETECT),
    m("COCO category id = class", "metrics/detection.py", '"category_id": int(c) + 1,', '"category_id": int(c),', DETECT_EVAL),
    m("COCO bbox as x1 y1 x2 y2", "metrics/detection.py", "b[:, 2:] - b[:, :2]], 1)", "b[:, 2:]], 1)", DETECT_EVAL),
    m("mAR@100 from stats[7]", "metrics/detection.py", '"mar100": float(s[8]),', '"mar100": float(s[7]),', DETECT_EVAL),
    # losses
    m("YOLO anchor match ratio >", "losses/detection.py", "match = torch.max(r, 1 / r).amax(-1) < self.anchor_t", "match = torch.max(r, 1 / r).amax(-1) > self.anchor_t", YOLO_LOSS),
    m("YOLO objectness balance flat", "losses/detection.py", "OBJ_BALANCE = {8: 4.0, 16: 1.0, 32: 0.4}", "OBJ_BALANCE = {8: 1.0, 16: 1.0, 32: 1.0}", YOLO_LOSS),
    m("YOLO ignore rule inverted", "losses/detection.py", "keep = pos | ~self._overlaps_gt(", "keep = pos | self._overlaps_gt(", YOLO_LOSS),
    m("localizer loss without classes", "losses/detection.py", "return box_weight * l_box + l_cls, {", "return box_weight * l_box, {", LOCALIZER),
    m("batch-hard farthest negative", "losses/metric.py", "hardest_neg = torch.where(neg, d, math.inf).amin(1)", "hardest_neg = torch.where(neg, d, math.inf).amax(1)", TRIPLET),
    m("ArcFace cos(θ − m)", "losses/metric.py", "with_margin = cos_y * math.cos(self.m) - sin_y * math.sin(self.m)", "with_margin = cos_y * math.cos(self.m) + sin_y * math.sin(self.m)", TRIPLET),
    m("matting composite F/B swapped", "losses/matting.py", "comp = pred * fg + (1 - pred) * bg", "comp = pred * bg + (1 - pred) * fg", MATTING_LOSS),
    # metrics
    m("FID without the 2×", "metrics/generation.py", "np.trace(s2) - 2 * tr_covmean", "np.trace(s2) - tr_covmean", GENERATION),
    m("KID cross term without the 2×", "metrics/generation.py", "return within - 2 * k_xy.sum() / (m * m)", "return within - k_xy.sum() / (m * m)", GENERATION),
    m("PSNR 20 log10", "metrics/generation.py", "return 10 * torch.log10(data_range**2 / mse)", "return 20 * torch.log10(data_range**2 / mse)", GENERATION),
    m("SSIM constants swapped", "metrics/generation.py", "c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2", "c1, c2 = (0.03 * data_range) ** 2, (0.01 * data_range) ** 2", GENERATION),
    m("confusion matrix transposed", "metrics/classification.py", "index_add_(0, targets * self.num_classes + preds, ones)", "index_add_(0, preds * self.num_classes + targets, ones)", CLASSIFICATION),
    m("verification accepts d <= t", "metrics/verification.py", "accept = distances < threshold", "accept = distances <= threshold", VERIFICATION),
    m("FAR threshold bracket left", "metrics/verification.py", 'lo = int(np.searchsorted(far, target, "right")) - 1', 'lo = int(np.searchsorted(far, target, "left")) - 1', VERIFICATION),
    m("SAD without / 1000", "metrics/matting.py", "return float(np.abs(p - a)[_unknown(trimap, a.shape)].sum() / 1000)", "return float(np.abs(p - a)[_unknown(trimap, a.shape)].sum())", MATTING),
    m("video mAP over all classes", "metrics/video.py", "present = ap[~np.isnan(ap)]", "present = np.nan_to_num(ap)", VIDEO),
    # the engine's step
    m("gradient accumulation unscaled", "engine/trainer.py", "scale(loss / cfg.accumulate).backward()", "scale(loss).backward()", ENGINE),
    m("optimizer steps every micro-batch", "engine/trainer.py", "last_micro = (i + 1) % cfg.accumulate == 0 or i + 1 == steps", "last_micro = True", ENGINE),
]
# fmt: on


def copy_source(dest: Path) -> Path:
    """A copy of src/ (without byte code) under `dest`: the directory to put on PYTHONPATH."""
    src = dest / "src"
    shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return src


def run_tests(src: Path, tests: tuple[str, ...]) -> tuple[str, float, str]:
    """pytest on `tests` importing mmkit from `src`: ("passed" | "failed" | "timeout", seconds, first failure)."""
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-x",
        "-p",
        "no:cacheprovider",
        "--timeout",
        str(TIMEOUT_S),
        *tests,
    ]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S + 60)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - t0, ""
    seconds = time.perf_counter() - t0
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", p.stdout, re.M)
    return ("passed" if p.returncode == 0 else "failed"), seconds, (failed[0] if failed else p.stdout[-300:])


def check_import(src: Path) -> None:
    """The copy, not the working tree, is what the tests import."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(
        [sys.executable, "-c", "import mmkit; print(mmkit.__file__)"], env=env, capture_output=True, text=True
    )
    if not out.stdout.strip().startswith(str(src)):
        raise SystemExit(f"mmkit is imported from {out.stdout.strip()!r}, not from the copy {src}")


def mutate(src: Path, mutant: Mutant) -> tuple[Path, str, int] | None:
    """Apply `mutant` to the copy: (path, the original file text, line number), or None when its original text is
    not in the file exactly once."""
    path = src / "mmkit" / mutant.file
    text = path.read_text()
    if text.count(mutant.original) != 1:
        return None
    line = text[: text.index(mutant.original)].count("\n") + 1
    path.write_text(text.replace(mutant.original, mutant.replacement))
    return path, text, line


def readme_table(rows: list[dict]) -> str:
    lines = [
        "| mutant | file:line | tests run | outcome | s |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        where = f"`{r['file']}:{r['line']}`" if r["line"] else f"`{r['file']}`"
        tests = " ".join(t for t in r["tests"] if t.startswith("tests/")).replace("tests/", "")
        lines.append(f"| {r['name']} | {where} | {tests} | {r['outcome']} | {r['seconds']:.0f} |")
    return "\n".join(lines)


def write_readme(rows: list[dict], counts: dict[str, int]) -> None:
    """Replace the table between the README's `mutation table` markers (if it has them)."""
    start, end = "<!-- mutation table: start -->", "<!-- mutation table: end -->"
    text = README.read_text()
    if start not in text or end not in text:
        print(f"{README} has no mutation table markers: not updated")
        return
    summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    block = f"{start}\n<!-- from: results/mutation.json -->\n\n{readme_table(rows)}\n\n{len(rows)} mutants: {summary}.\n{end}"
    before, rest = text.split(start, 1)
    README.write_text(before + block + rest.split(end, 1)[1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", help="comma-separated mutant names (default: all)")
    p.add_argument("--list", action="store_true", help="list the mutants and whether each applies, then stop")
    args = p.parse_args()
    chosen = [x for x in MUTANTS if not args.only or x.name in args.only.split(",")]
    env = environment("cpu", 2)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="mmkit-mutation-") as tmp:
        src = copy_source(Path(tmp))
        if args.list:
            for x in chosen:
                applied = mutate(src, x)
                if applied:
                    applied[0].write_text(applied[1])
                print(f"{x.name:40s} {x.file}:{applied[2] if applied else '-'}")
            return
        check_import(src)
        baseline: dict[tuple[str, ...], tuple[str, float, str]] = {}
        for x in chosen:
            if x.tests not in baseline:
                baseline[x.tests] = run_tests(src, x.tests)
                print(
                    f"baseline {' '.join(x.tests)}: {baseline[x.tests][0]} ({baseline[x.tests][1]:.0f} s)",
                    flush=True,
                )
            applied = mutate(src, x)
            if applied is None:
                outcome, seconds, detail, line = "not applied (original text not found once)", 0.0, "", 0
            elif baseline[x.tests][0] != "passed":
                applied[0].write_text(applied[1])
                outcome, seconds, detail, line = (
                    "not run (tests fail without the mutant)",
                    0.0,
                    baseline[x.tests][2],
                    0,
                )
            else:
                path, original_text, line = applied
                try:
                    result, seconds, detail = run_tests(src, x.tests)
                finally:
                    path.write_text(original_text)
                outcome = {"passed": "survived", "failed": "killed", "timeout": "killed (timeout)"}[result]
            rows.append(
                {
                    **asdict(x),
                    "line": line,
                    "outcome": outcome,
                    "seconds": round(seconds, 1),
                    "detail": detail if outcome.startswith("killed") else "",
                }
            )
            print(f"{x.name}: {outcome} ({seconds:.0f} s) {rows[-1]['detail']}", flush=True)
    counts: dict[str, int] = {}
    for r in rows:
        key = r["outcome"].split(" (")[0]
        counts[key] = counts.get(key, 0) + 1
    print()
    print(readme_table(rows))
    save_result("mutation", env, quick=bool(args.only), counts=counts, mutants=rows)  # --only: .quick.json
    if not args.only:
        write_readme(rows, counts)


if __name__ == "__main__":
    main()
