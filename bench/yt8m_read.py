"""YouTube-8M frame-level TFRecord reading: mmkit's reader (no TensorFlow) against TensorFlow's tf.data.

Writes one frame-level file of ``--records`` SequenceExamples × ``--frames`` frames, real-shaped (1024 rgb + 128
audio bytes per frame, random uint8), then measures records/s over that file (read from the page cache):

- ``read_records(level="frame")`` with and without CRC checks (one process: the reader is Python + numpy);
- ``YouTube8MDataset`` items (features padded to ``--frames``, multi-hot labels): one process, and through a
  ``DataLoader`` (batches of 32) in the main process and with ``--threads`` worker processes. A batch is
  32 × 300 × 1152 float32 = 44 MB of fresh memory: on a VM where first-touch page faults are slow, collating
  costs more than reading (``THP_MEM_ALLOC_ENABLE=1`` lets torch's allocator use huge pages); the video task
  therefore batches uint8 items (``dequantize=False``, 11 MB a batch) and dequantizes each batch whole, also timed;
- TensorFlow: ``TFRecordDataset`` → ``map(parse_single_sequence_example + decode_raw + dequantize,
  num_parallel_calls=threads)`` → prefetch, as the starter code's frame reader does, with inter/intra-op threads
  set to ``--threads``. TensorFlow is never imported here: that half runs in a subprocess with ``--tf-python``
  (default ``bench/.venv-tf/bin/python``, a venv with ``tensorflow-cpu``), and is "not measured" without it.
  The subprocess also returns TF's dequantized first record, compared with ours value for value.

Each rate is the best of ``--repeats`` passes over the whole file (after one warm-up pass).

    python3 -m venv bench/.venv-tf && bench/.venv-tf/bin/pip install tensorflow-cpu==2.21.0   # once
    .venv/bin/python bench/yt8m_read.py [--records 1000] [--threads 2] [--tf-python PATH] [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import base_parser, environment, parse_args, print_table, save_result

from mmkit.data.formats.youtube8m import (
    dequantize_batch,
    dequantize_features,
    read_records,
    write_records,
)
from mmkit.data.formats.youtube8m_dataset import YouTube8MDataset, collate

DEFAULT_TF_PYTHON = Path(__file__).resolve().parent / ".venv-tf" / "bin" / "python"
RGB, AUDIO = 1024, 128

# Run by the TF venv's python: argv = file, threads, repeats, frames, output .npy for the first record's rgb.
# "records": parsed + dequantized records (what read_records yields); "padded batches": also padded to max frames,
# rgb and audio concatenated and batched by 32 (the starter code's YT8MFrameFeatureReader; what the Dataset gives).
TF_SCRIPT = r"""
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import tensorflow as tf

path, threads, repeats, max_frames, out_npy = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
tf.config.threading.set_inter_op_parallelism_threads(threads)
tf.config.threading.set_intra_op_parallelism_threads(threads)

def dequantize(x, max_q=2.0, min_q=-2.0):
    r = max_q - min_q
    return x * (r / 255.0) + (r / 512.0 + min_q)

def parse(serialized):
    ctx, seq = tf.io.parse_single_sequence_example(
        serialized,
        context_features={"id": tf.io.FixedLenFeature([], tf.string), "labels": tf.io.VarLenFeature(tf.int64)},
        sequence_features={k: tf.io.FixedLenSequenceFeature([], dtype=tf.string) for k in ("rgb", "audio")},
    )
    feats = {
        k: dequantize(tf.reshape(tf.cast(tf.io.decode_raw(seq[k], tf.uint8), tf.float32), [-1, d]))
        for k, d in (("rgb", 1024), ("audio", 128))
    }
    return ctx["id"], ctx["labels"].values, feats["rgb"], feats["audio"]

def padded(serialized):
    vid, labels, rgb, audio = parse(serialized)
    n = tf.minimum(tf.shape(rgb)[0], max_frames)
    pad = [[0, max_frames - n], [0, 0]]
    video = tf.concat([tf.pad(rgb[:n], pad), tf.pad(audio[:n], pad)], 1)
    return video, n, tf.reduce_sum(tf.one_hot(labels, 3862), 0)

def records():
    return tf.data.TFRecordDataset(path).map(parse, num_parallel_calls=threads).prefetch(4)

def batches():
    ds = tf.data.TFRecordDataset(path).map(padded, num_parallel_calls=threads)
    return ds.batch(32).prefetch(2)

first = next(iter(records()))
np.save(out_npy, first[2].numpy())
result = {"tensorflow": tf.__version__}
for name, make, per in (("records", records, lambda x: 1), ("padded batches", batches, lambda x: len(x[1]))):
    rates = []
    for rep in range(repeats + 1):
        t0, n = time.perf_counter(), 0
        for x in make():
            n += per(x)
        if rep:  # the first pass warms up
            rates.append(n / (time.perf_counter() - t0))
    result[name] = rates
print(json.dumps(result))
"""


def write_file(path: Path, records: int, frames: int, seed: int) -> None:
    rng = np.random.default_rng(seed)

    def gen() -> Iterator[dict[str, Any]]:
        for i in range(records):
            yield {
                "id": f"{i:04x}",
                "labels": sorted(rng.choice(3862, int(rng.integers(1, 5)), replace=False).tolist()),
                "rgb": dequantize_features(rng.integers(0, 256, (frames, RGB), dtype=np.uint8)),
                "audio": dequantize_features(rng.integers(0, 256, (frames, AUDIO), dtype=np.uint8)),
            }

    write_records(path, gen(), level="frame")


def best_rate(fn: Callable[[], int], repeats: int) -> dict[str, Any]:
    fn()  # warm-up
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - t0))
    return {"records_per_s": round(max(rates), 1), "all": [round(r, 1) for r in rates]}


def measure_ours(path: Path, frames: int, threads: int, repeats: int) -> dict[str, dict[str, Any]]:
    ds = YouTube8MDataset(path, "frame", num_classes=3862, max_frames=frames)

    def items() -> int:
        for i in range(len(ds)):
            ds[i]
        return len(ds)

    def loader(workers: int) -> int:
        dl = torch.utils.data.DataLoader(ds, batch_size=32, num_workers=workers, collate_fn=collate)
        return sum(len(b[1]) for b in dl)

    # what the video task uses: uint8 items, each batch dequantized whole (float32 like the rows above)
    ds_q = YouTube8MDataset(path, "frame", num_classes=3862, max_frames=frames, dequantize=False)

    def loader_q(workers: int) -> int:
        dl = torch.utils.data.DataLoader(ds_q, batch_size=32, num_workers=workers, collate_fn=collate)
        return sum(len(dequantize_batch(b[0])) for b in dl)

    return {
        "read_records (CRC checked)": best_rate(lambda: sum(1 for _ in read_records(path, "frame")), repeats),
        "read_records (verify_crc=False)": best_rate(
            lambda: sum(1 for _ in read_records(path, "frame", verify_crc=False)), repeats
        ),
        "YouTube8MDataset items, padded (1 process)": best_rate(items, repeats),
        "YouTube8MDataset + DataLoader, batches of 32 (in process)": best_rate(lambda: loader(0), repeats),
        f"YouTube8MDataset + DataLoader, batches of 32 ({threads} workers)": best_rate(
            lambda: loader(threads), repeats
        ),
        "uint8 items + DataLoader, batches of 32 dequantized whole (in process)": best_rate(
            lambda: loader_q(0), repeats
        ),
        f"uint8 items + DataLoader, batches of 32 dequantized whole ({threads} workers)": best_rate(
            lambda: loader_q(threads), repeats
        ),
    }


def measure_tf(
    tf_python: Path | None, path: Path, frames: int, threads: int, repeats: int, workdir: Path
) -> dict[str, Any]:
    if tf_python is None or not tf_python.exists():
        return {"status": f"not measured (no TensorFlow python at {tf_python})"}
    out_npy = workdir / "tf_first_rgb.npy"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    cmd = [str(tf_python), "-c", TF_SCRIPT, str(path), str(threads), str(repeats), str(frames), str(out_npy)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if r.returncode != 0:
        return {"status": f"not measured (TensorFlow run failed: {r.stderr.strip().splitlines()[-1:]})"}
    res = json.loads(r.stdout.strip().splitlines()[-1])
    ours = next(read_records(path, "frame"))["rgb"]
    theirs = np.load(out_npy)
    return {
        "status": "measured",
        "tensorflow": res["tensorflow"],
        "records": {
            "records_per_s": round(max(res["records"]), 1),
            "all": [round(x, 1) for x in res["records"]],
        },
        "padded batches": {
            "records_per_s": round(max(res["padded batches"]), 1),
            "all": [round(x, 1) for x in res["padded batches"]],
        },
        "first_record_rgb_max_abs_diff_vs_ours": float(np.abs(theirs - ours).max()),
        "first_record_rgb_bitwise_equal": bool(np.array_equal(theirs, ours)),
    }


def main() -> None:
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--tf-python", type=Path, default=DEFAULT_TF_PYTHON, help="python of a venv with TensorFlow"
    )
    args = parse_args(p)
    records, repeats = (50, 1) if args.quick else (args.records, args.repeats)
    env = environment("cpu", args.threads)
    with tempfile.TemporaryDirectory(prefix="yt8m_bench_") as tmp:
        path = Path(tmp) / "frame.tfrecord"
        t0 = time.perf_counter()
        write_file(path, records, args.frames, seed=0)
        write_s = time.perf_counter() - t0
        size_mb = path.stat().st_size / 1e6
        ours = measure_ours(path, args.frames, args.threads, repeats)
        tf = measure_tf(args.tf_python, path, args.frames, args.threads, repeats, Path(tmp))
    rows = [
        [name, r["records_per_s"], round(r["records_per_s"] * size_mb / records, 1)]
        for name, r in ours.items()
    ]
    for kind in ("records", "padded batches"):
        name = f"TensorFlow {tf.get('tensorflow', '')} tf.data, {kind} ({args.threads} threads)"
        if kind in tf:
            rate = tf[kind]["records_per_s"]
            rows.append([name, rate, round(rate * size_mb / records, 1)])
        else:
            rows.append([name, tf["status"], "-"])
    print_table(
        ["reader", "records/s", "MB/s"],
        rows,
        title=f"YouTube-8M frame-level reading: {records} records x {args.frames} frames ({size_mb:.0f} MB), "
        f"{env['cpu']}, {args.threads} threads",
        quick=args.quick,
    )
    if "first_record_rgb_max_abs_diff_vs_ours" in tf:
        print(
            f"TF vs mmkit, first record's rgb: max |diff| {tf['first_record_rgb_max_abs_diff_vs_ours']:.3g}, "
            f"bitwise equal: {tf['first_record_rgb_bitwise_equal']}"
        )
    save_result(
        "yt8m_read",
        env,
        quick=args.quick,
        settings={
            "records": records,
            "frames": args.frames,
            "rgb": RGB,
            "audio": AUDIO,
            "THP_MEM_ALLOC_ENABLE": os.environ.get("THP_MEM_ALLOC_ENABLE"),
        },
        file_mb=round(size_mb, 1),
        write_s=round(write_s, 2),
        mmkit=ours,
        tensorflow=tf,
    )


if __name__ == "__main__":
    main()
