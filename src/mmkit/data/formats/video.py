"""Video files through PyAV (FFmpeg): probe, decode sampled frames, encode H.264, a labelled video dataset.

``read_frames`` decodes only what it needs: the frames nearest to a regular time grid (``fps``) or to
``num_frames`` instants spread evenly from the first frame to the last, each converted to RGB as soon as it
is picked; with ``size``, resized so that the SHORTER side is ``size`` pixels, aspect ratio kept (FFmpeg's
area filter, so downscaling is antialiased). When the next wanted instant lies more than ``SEEK_GAP``
seconds ahead, it seeks to the key frame before it instead of decoding the gap (and stops seeking for the
rest of the read if a seek lands behind what was already decoded, as in a clip with a single key frame).
Timestamps are seconds from the stream's first frame. With ``fps`` above the video's rate, frames repeat.

Broken input raises ``MMKitError("<file>: <problem>")``: a missing file, a file FFmpeg cannot open (not a
video, or an MP4 cut short before its index, which most MP4 writers put at the end), a file with no video
stream, a file of which no frame decodes. A file that decodes for a while and then fails (cut short after
its index, or corrupt further on) returns the frames picked up to that point, with a warning naming the
file: instants past the failure are dropped, so fewer frames than asked come back.

Usage::

    from mmkit.data.formats.video import VideoFolderDataset, probe, read_frames, write_video

    info = probe("clip.mp4")  # VideoInfo(frames=250, fps=25.0, duration=10.0, width=640, height=272)
    frames, times = read_frames("clip.mp4", num_frames=16, size=112)  # uint8 [16, 3, 112, 264], float64 [16]
    frames, times = read_frames("clip.mp4", fps=2)  # one frame every 0.5 s
    write_video("out.mp4", frames, fps=8)  # H.264 in yuv420p (even sizes), index first
    ds = VideoFolderDataset("videos/", num_frames=16, size=112)  # videos/<class>/*.mp4, or path,label CSV
    clip, label = ds[0]  # uint8 [16, 3, 112, 112], class index (or a multi-hot float32 vector)
"""

from __future__ import annotations

import csv
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from torch.utils.data import Dataset

from mmkit.data.formats.imagefolder import find_classes
from mmkit.data.walk import walk_files
from mmkit.errors import MMKitError

__all__ = [
    "SEEK_GAP",
    "VIDEO_EXTENSIONS",
    "VideoFolderDataset",
    "VideoInfo",
    "check_video",
    "is_video_file",
    "probe",
    "read_frames",
    "write_video",
]

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")
SEEK_GAP = 2.0  # seconds: seek instead of decoding forward when the next wanted frame is further than this
# Frame durations: a wanted instant further than this past the last frame is past the end of the video
_LATE = 1.5


@dataclass(frozen=True)
class VideoInfo:
    """Length, rate and size of the first video stream (frames are counted from packets if need be)."""

    frames: int
    fps: float
    duration: float  # seconds
    width: int
    height: int


def is_video_file(name: str | os.PathLike) -> bool:
    """True when the name ends with one of ``VIDEO_EXTENSIONS`` (case-insensitive)."""
    return str(name).lower().endswith(VIDEO_EXTENSIONS)


def _open(path: str | os.PathLike, threads: int = 0) -> tuple[av.container.InputContainer, av.VideoStream]:
    """Open ``path`` and return the container and its first video stream (MMKitError for anything wrong)."""
    p = Path(path)
    if not p.exists():
        raise MMKitError(f"{p}: no such file")
    if p.is_dir():
        raise MMKitError(f"{p}: is a folder, not a video file")
    if not p.is_file():  # a FIFO, socket or device: opening it would block or never end
        raise MMKitError(f"{p}: not a regular file (a pipe, socket or device)")
    try:
        container = av.open(str(p))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise MMKitError(
            f"{p}: cannot open as a video, not a video file or truncated ({_reason(exc)})"
        ) from exc
    if not container.streams.video:
        container.close()
        raise MMKitError(f"{p}: has no video stream")
    stream = container.streams.video[0]
    if threads != 1:  # 0: FFmpeg picks the count; frame and slice threading where the codec has them
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
    return container, stream


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0]


def _rate(stream: av.VideoStream) -> float | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return float(rate)
    return None


def _timing(container, stream) -> tuple[int, float, float]:
    """(frames, fps, duration in seconds) of ``stream``; counts packets when the header lacks any of them."""
    tb = stream.time_base
    frames, fps = int(stream.frames or 0), _rate(stream)
    duration = None
    if stream.duration and tb:
        duration = float(stream.duration * tb)
    elif container.duration:
        duration = container.duration / av.time_base - float((stream.start_time or 0) * (tb or 0))
    if not frames or not fps or not duration:  # e.g. WebM/MKV: count packets (demuxing only, no decoding)
        pts = [pk.pts for pk in container.demux(stream) if pk.size and pk.pts is not None]
        container.seek(0)
        frames = frames or len(pts)
        span = float((max(pts) - min(pts)) * tb) if len(pts) > 1 and tb else 0.0
        if not fps and span > 0:
            fps = (len(pts) - 1) / span
        if not duration and fps:
            duration = span + 1 / fps
    fps = fps or 25.0  # nothing to go on (a one-frame stream): any rate gives the same single frame
    duration = duration or frames / fps
    return frames, fps, duration


def probe(path: str | os.PathLike) -> VideoInfo:
    """Frame count, frame rate, duration and size of the first video stream, without decoding."""
    container, stream = _open(path, threads=1)
    with container:
        frames, fps, duration = _timing(container, stream)
        return VideoInfo(frames, fps, duration, stream.codec_context.width, stream.codec_context.height)


def check_video(path: str | os.PathLike) -> str | None:
    """None when ``path`` opens, has a video stream and its first frame decodes; else the reason, one line."""
    try:
        container, stream = _open(path, threads=1)
    except MMKitError as exc:
        return str(exc).split(": ", 1)[-1]
    with container:
        try:
            next(container.decode(stream))
        except StopIteration:
            return "no frame decodes"
        except (av.error.FFmpegError, OSError) as exc:
            return f"first frame does not decode ({_reason(exc)})"
    return None


def _output_size(width: int, height: int, size: int | None) -> tuple[int, int]:
    if size is None:
        return width, height
    if width <= height:
        return size, max(1, round(height * size / width))
    return max(1, round(width * size / height)), size


def _targets(fps: float, duration: float, want_fps: float | None, num: int | None) -> np.ndarray | None:
    """The instants to pick frames at (None: every frame)."""
    if want_fps is None and num is None:
        return None
    last = max(0.0, duration - 1 / fps)  # time of the last frame
    if num is not None:
        return np.linspace(0.0, last, num)
    count = int(math.floor((last + 0.5 / fps) * want_fps + 1e-9)) + 1  # grid instants within the frames' span
    return np.arange(count) / want_fps


def read_frames(
    path: str | os.PathLike,
    *,
    fps: float | None = None,
    num_frames: int | None = None,
    size: int | None = None,
    threads: int = 2,
    seek: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode ``path`` into (uint8 [T, 3, H, W] RGB frames, float64 [T] timestamps in seconds).

    ``fps``: the frames nearest to the instants 0, 1/fps, 2/fps, ... up to the last frame. ``num_frames``: the
    frames nearest to that many instants spread evenly from the first frame to the last. Neither: every frame.
    ``size``: resize so the shorter side is ``size`` (aspect kept). ``threads``: decoder threads (0 = FFmpeg's
    choice). ``seek``: jump over gaps longer than ``SEEK_GAP`` seconds instead of decoding through them.
    """
    if fps is not None and num_frames is not None:
        raise ValueError("give fps or num_frames, not both")
    if (fps is not None and fps <= 0) or (num_frames is not None and num_frames < 1) or (size and size < 1):
        raise ValueError(f"need fps > 0, num_frames >= 1, size >= 1; got {fps}, {num_frames}, {size}")
    container, stream = _open(path, threads=threads)
    with container:
        frames, rate, duration = _timing(container, stream)
        width, height = _output_size(stream.codec_context.width, stream.codec_context.height, size)
        start = float((stream.start_time or 0) * stream.time_base) if stream.time_base else 0.0
        targets = _targets(rate, duration, fps, num_frames)

        def convert(frame: av.VideoFrame) -> np.ndarray:
            return frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")

        arrays, times, error, until = _decode(container, stream, targets, start, rate, seek, convert)
    wanted = len(targets) if targets is not None else frames
    if not arrays:
        why = f" ({_reason(error)})" if error else ""
        raise MMKitError(f"{path}: no frame could be decoded{why}")
    if error is not None or (targets is not None and len(arrays) < wanted):
        logger.warning(
            "%s: truncated or corrupt, decoding stopped at %.2f s%s; returning %d of %d frames",
            path,
            until,
            f" ({_reason(error)})" if error else "",
            len(arrays),
            wanted,
        )
    video = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return video, torch.tensor(times, dtype=torch.float64)


def _frame_time(frame: av.VideoFrame, start: float, index: int, rate: float) -> float:
    return float(frame.time) - start if frame.pts is not None and frame.time_base else index / rate


def _decode(container, stream, targets: np.ndarray | None, start: float, rate: float, seek: bool, convert):
    """The frames nearest to each target (every frame when ``targets`` is None), converted as soon as they are
    picked, their times, the decoding error that ended the stream early (None when it ended normally), and the
    time of the last frame decoded."""
    picked: list[np.ndarray] = []
    last: tuple = (None, None)  # the frame converted last, and its array (a frame may be picked twice)

    def pick(frame: av.VideoFrame) -> np.ndarray:
        nonlocal last
        if last[0] is not frame:
            last = (frame, convert(frame))
        return last[1]

    times: list[float] = []
    prev, prev_t, count = None, -math.inf, 0
    seek_next = seek and targets is not None and targets[0] > SEEK_GAP
    error = None
    n = len(targets) if targets is not None else None
    while n is None or len(picked) < n:
        after_seek = seek_next
        if seek_next:
            when = targets[len(picked)] - 1 / rate + start  # one frame early: the frame before the target too
            container.seek(max(0, int(when / stream.time_base)), stream=stream, backward=True)
            seek_next = False
        try:
            for frame in container.decode(stream):
                t = _frame_time(frame, start, count, rate)
                count += 1
                if t <= prev_t:  # behind what was decoded already (a seek that landed too early)
                    seek, after_seek = seek and not after_seek, False
                    continue
                after_seek = False
                if targets is None:
                    picked.append(pick(frame))
                    times.append(t)
                    prev_t = t
                    continue
                while len(picked) < n and t >= targets[len(picked)]:
                    target = targets[len(picked)]
                    take_prev = prev is not None and target - prev_t < t - target
                    picked.append(pick(prev if take_prev else frame))
                    times.append(prev_t if take_prev else t)
                prev, prev_t = frame, t
                if len(picked) == n:
                    break
                if seek and targets[len(picked)] - t > SEEK_GAP:
                    seek_next = True
                    break
        except (av.error.FFmpegError, OSError) as exc:
            error = exc
            break
        if not seek_next:
            break  # the stream ended (or every target is picked)
    if targets is not None and prev is not None and error is None:
        # The stream ended normally: its last frame is the nearest for targets just after it
        while len(picked) < n and targets[len(picked)] - prev_t <= _LATE / rate:
            picked.append(pick(prev))
            times.append(prev_t)
    return picked, times, error, prev_t


def write_video(
    path: str | os.PathLike, frames: torch.Tensor | np.ndarray, fps: float = 8, *, crf: int = 18
) -> Path:
    """Encode uint8 [T, 3, H, W] RGB frames as H.264 (yuv420p: H and W must be even) at ``fps``; the container
    follows the suffix (.mp4, .mkv, ...). MP4 files get their index first, so a cut-short file still plays."""
    path = Path(path)
    array = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if array.ndim != 4 or array.shape[1] != 3 or array.dtype != np.uint8 or len(array) == 0:
        raise ValueError(f"frames must be uint8 [T, 3, H, W] with T >= 1, got {array.dtype} {array.shape}")
    height, width = array.shape[2:]
    if height % 2 or width % 2:
        raise MMKitError(f"{path}: H.264 in yuv420p needs even frame sizes, got {width}x{height}")
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    options = {"movflags": "faststart"} if path.suffix.lower() in (".mp4", ".mov", ".m4v") else {}
    with av.open(str(path), "w", options=options) as container:  # faststart: the MP4 index before the data
        stream = container.add_stream("libx264", rate=rate, options={"crf": str(crf)})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for image in array.transpose(0, 2, 3, 1):
            container.mux(
                stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24"))
            )
        container.mux(stream.encode())
    return path


# ----------------------------------------------------------------------------------------------------
# A labelled video dataset: one folder per class, or a CSV of path,label[,label...]


def _label_order(names: set[str]) -> list[str]:
    """Sorted class names, numerically when every name is an integer ("2" before "10")."""
    if all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


def _read_csv(path: Path) -> list[tuple[str, list[str]]]:
    """Rows ``path,label[,label...]``, paths relative to the CSV; a first line without a video is a header."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            lines = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MMKitError(f"{path}: cannot read CSV ({_reason(exc)})") from exc
    rows = []
    for number, fields in enumerate(lines, start=1):
        fields = [x.strip() for x in fields]
        if not any(fields) or fields[0].startswith("#"):
            continue
        video = fields[0]
        if not rows and number == 1 and not is_video_file(video) and not (path.parent / video).is_file():
            continue  # header line, e.g. "path,label"
        labels = list(dict.fromkeys(x for x in fields[1:] if x))
        if not video or not labels:
            raise MMKitError(f"{path}:{number}: expected 'path,label[,label...]', got {','.join(fields)!r}")
        rows.append((str(path.parent / video), labels))
    if not rows:
        raise MMKitError(f"{path}: no 'path,label' rows")
    return rows


def _list_folder(root: Path, classes: list[str] | None) -> tuple[list[tuple[str, list[str]]], list[str]]:
    found, _ = find_classes(root)
    if classes is not None and set(found) - set(classes):
        raise MMKitError(
            f"{root}: class folders not in the given classes: {sorted(set(found) - set(classes))[:5]}"
        )
    rows = [
        (str(path), [name])
        for name in found
        for path in walk_files(root / name, tree=root)
        if is_video_file(path.name)
    ]
    return rows, found


class VideoFolderDataset(Dataset):
    """Labelled videos: ``root/<class>/*.mp4|avi|mkv|mov|webm`` or a CSV file ``path,label[,label...]``.

    Items are (uint8 [num_frames, 3, size, size], label): frames spread evenly over the whole video, the
    shorter side resized to ``size`` and the centre cropped; a video that ends early repeats its last frame.
    The label is the class index, or with ``multi_label`` (a CSV row with several labels, or forced) a float32
    multi-hot vector. Every file is checked once while indexing (it opens and its first frame decodes); the
    ones that fail are skipped with a warning and listed in ``skipped`` as (path, reason). A video that fails
    later, at access, gives None (with a warning): batch with ``mmkit.data.collate_skip_none``.
    """

    def __init__(
        self,
        source: str | os.PathLike,
        *,
        num_frames: int = 16,
        size: int = 112,
        classes: list[str] | None = None,
        multi_label: bool | None = None,
        threads: int = 1,
    ):
        source = Path(source)
        if not source.exists():
            raise MMKitError(f"{source}: no such file or folder")
        if source.is_dir():
            rows, found = _list_folder(source, classes)
        else:
            rows = _read_csv(source)
            found = _label_order({label for _, labels in rows for label in labels})
        self.classes = list(classes) if classes is not None else found
        index = {name: i for i, name in enumerate(self.classes)}
        unknown = sorted({label for _, labels in rows for label in labels} - set(index))
        if unknown:
            raise MMKitError(f"{source}: labels not among the classes: {', '.join(unknown[:5])}")
        if not rows:
            raise MMKitError(f"{source}: no video files ({', '.join(e[1:] for e in VIDEO_EXTENSIONS)})")
        self.multi_label = any(len(labels) > 1 for _, labels in rows) if multi_label is None else multi_label
        if not self.multi_label and any(len(labels) > 1 for _, labels in rows):
            raise MMKitError(f"{source}: rows with several labels, but multi_label=False")
        self.source, self.num_frames, self.size, self.threads = source, num_frames, size, threads
        with ThreadPoolExecutor(max_workers=min(8, 2 * (os.cpu_count() or 1))) as pool:
            reasons = list(pool.map(check_video, [p for p, _ in rows]))
        self.samples: list[tuple[str, list[int]]] = []
        self.skipped: list[tuple[str, str]] = []
        for (video, labels), reason in zip(rows, reasons, strict=True):
            if reason is None:
                self.samples.append((video, [index[x] for x in labels]))
            else:
                logger.warning("%s: skipped, cannot read video (%s)", video, reason)
                self.skipped.append((video, reason))
        if not self.samples:
            raise MMKitError(f"{source}: none of the {len(rows)} videos could be read")
        self.targets = [labels if self.multi_label else labels[0] for _, labels in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def label(self, index: int) -> int | torch.Tensor:
        """The label of item ``index`` without decoding it."""
        labels = self.samples[index][1]
        if not self.multi_label:
            return labels[0]
        hot = torch.zeros(len(self.classes), dtype=torch.float32)
        hot[labels] = 1.0
        return hot

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int | torch.Tensor] | None:
        path = self.samples[index][0]
        try:
            frames, _ = read_frames(path, num_frames=self.num_frames, size=self.size, threads=self.threads)
        except MMKitError as exc:
            logger.warning("skipping unreadable video: %s", exc)
            return None
        h, w = frames.shape[-2:]
        top, left = (h - self.size) // 2, (w - self.size) // 2
        frames = frames[:, :, top : top + self.size, left : left + self.size]
        if len(frames) < self.num_frames:
            frames = torch.cat([frames, frames[-1:].expand(self.num_frames - len(frames), -1, -1, -1)])
        return frames.contiguous(), self.label(index)
