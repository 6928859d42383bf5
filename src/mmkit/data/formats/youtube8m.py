"""YouTube-8M TFRecords, read and written without TensorFlow.

A TFRecord file is a sequence of records, each framed as: uint64 length, masked CRC32C of those 8 bytes, the
payload, masked CRC32C of the payload (all little-endian). YouTube-8M payloads are protobufs:

- video level: a ``tf.train.Example`` with ``id`` (bytes), ``labels`` (int64 list), ``mean_rgb`` (1024 floats)
  and ``mean_audio`` (128 floats);
- frame level: a ``tf.train.SequenceExample`` with context ``id`` and ``labels`` (plus ``segment_labels``,
  ``segment_start_times`` and ``segment_scores`` in the 2019 segment-rated sets) and feature lists ``rgb`` and
  ``audio``: one bytes feature per frame, each byte a quantized value that the starter code maps back with
  ``q * 4/255 + 4/512 - 2`` (``utils.Dequantize`` with max 2, min -2).

The protobuf wire format is parsed here directly: a frame list is one strided numpy view over the payload
(every frame's few header bytes are checked to be identical), so a 300-frame record costs one CRC, a handful
of Python steps and one dequantizing pass. Feature widths are read from the data, so other widths than
1024/128 work; a missing ``rgb``/``audio`` (``mean_rgb``/``mean_audio``) comes back with width 0. Older files
that name the id ``video_id`` are read too. Quantizing inverts the dequantization exactly (round to nearest,
clipped to [0, 255]), so a round trip is within half a quantization step (4/510) for values in [-2, 2]. (The
starter code's feature extractor rounds ``(x + 2) * 255/4`` instead, which reads back half a step high.)

Usage::

    from mmkit.data.formats.youtube8m import read_records, write_records

    for rec in read_records("frame/train0000.tfrecord", level="frame"):
        rec["id"], rec["labels"], rec["rgb"].shape, rec["audio"].shape  # str, [int], (T, 1024), (T, 128)
    write_records("mine.tfrecord", [{"id": "v1", "labels": [3], "rgb": rgb, "audio": audio}], level="frame")

The torch Dataset over these files is `mmkit.data.formats.youtube8m_dataset.YouTube8MDataset`.
"""

from __future__ import annotations

import glob
import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import google_crc32c
import numpy as np
import torch

from mmkit.errors import MMKitError

LEVELS = ("video", "frame")
SAMPLING = ("pad", "uniform", "random")
MAX_QUANTIZED, MIN_QUANTIZED = 2.0, -2.0
QUANT_SCALE = np.float32((MAX_QUANTIZED - MIN_QUANTIZED) / 255.0)  # as utils.Dequantize computes them
QUANT_BIAS = np.float32((MAX_QUANTIZED - MIN_QUANTIZED) / 512.0 + MIN_QUANTIZED)
SEGMENT_FIELDS = ("segment_labels", "segment_start_times", "segment_scores")
_MASK_DELTA = 0xA282EAD8
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
PathSpec = str | os.PathLike | Iterable[str | os.PathLike]


class _Corrupt(ValueError):
    """A payload that does not parse; turned into an MMKitError that names the file and the offset."""


# ---------------------------------------------------------------------------------------------------------------------
# Paths and TFRecord framing


def expand_paths(paths: PathSpec) -> list[Path]:
    """Files named by a path, a folder (its ``*.tfrecord``), a glob pattern, or a list of those, in order."""
    specs = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    files: list[Path] = []
    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            found = sorted(p.glob("*.tfrecord"))
            if not found:
                raise MMKitError(f"{p}: no *.tfrecord files in this folder")
            files += found
        elif p.is_file():
            files.append(p)
        elif glob.has_magic(str(spec)):
            found = sorted(Path(f) for f in glob.glob(str(spec)) if Path(f).is_file())
            if not found:
                raise MMKitError(f"{spec}: no files match this pattern")
            files += found
        else:
            raise MMKitError(f"{p}: no such file or folder")
    if not files:
        raise MMKitError("no TFRecord files given")
    return files


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC32C: rotate right by 15 bits and add a constant."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame_record(payload: bytes) -> bytes:
    """One TFRecord: length, its masked CRC, the payload, its masked CRC."""
    length = _U64.pack(len(payload))
    return b"".join((length, _U32.pack(masked_crc(length)), payload, _U32.pack(masked_crc(payload))))


def _read_header(f: BinaryIO, path: Path, offset: int, size: int) -> int | None:
    """The payload length of the record at `offset` (None at a clean end of file), its CRC checked."""
    header = f.read(12)
    if not header:
        return None
    if len(header) < 12:
        raise MMKitError(f"{path}: record at byte {offset}: truncated header ({len(header)} of 12 bytes)")
    length, crc = _U64.unpack_from(header)[0], _U32.unpack_from(header, 8)[0]
    if masked_crc(header[:8]) != crc:
        raise MMKitError(
            f"{path}: record at byte {offset}: bad CRC of the length (not a TFRecord, or corrupt)"
        )
    if offset + 16 + length > size:
        raise MMKitError(
            f"{path}: record at byte {offset}: truncated ({length} bytes announced, {size - offset - 12} left)"
        )
    return length


def _read_payload(f: BinaryIO, path: Path, offset: int, length: int, verify_crc: bool) -> bytes:
    payload = f.read(length)
    footer = f.read(4)
    if len(payload) < length or len(footer) < 4:
        raise MMKitError(f"{path}: record at byte {offset}: truncated payload")
    if verify_crc and masked_crc(payload) != _U32.unpack(footer)[0]:
        raise MMKitError(f"{path}: record at byte {offset}: bad CRC of the data (corrupt record)")
    return payload


def _open(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")  # noqa: SIM115 - the callers close it (with)
    except OSError as exc:
        raise MMKitError(f"{path}: cannot open ({exc.strerror})") from exc


def iter_payloads(path: Path, verify_crc: bool = True) -> Iterator[tuple[int, bytes]]:
    """(byte offset, payload) of every record in one TFRecord file."""
    with _open(path) as f:
        size, offset = os.fstat(f.fileno()).st_size, 0
        while (length := _read_header(f, path, offset, size)) is not None:
            yield offset, _read_payload(f, path, offset, length, verify_crc)
            offset += 16 + length


def index_records(path: Path) -> list[int]:
    """Byte offsets of the records of one file (headers only: length CRCs checked, data CRCs not)."""
    offsets = []
    with _open(path) as f:
        size, offset = os.fstat(f.fileno()).st_size, 0
        while (length := _read_header(f, path, offset, size)) is not None:
            offsets.append(offset)
            offset += 16 + length
            f.seek(offset)
    return offsets


def count_records(paths: PathSpec) -> int:
    """Number of records in the files (reads only the 12-byte record headers)."""
    return sum(len(index_records(p)) for p in expand_paths(paths))


# ---------------------------------------------------------------------------------------------------------------------
# Protobuf wire format: the few messages of tf.train.Example / SequenceExample


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    result, shift = b & 0x7F, 7
    while True:
        pos += 1
        b = buf[pos]
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos + 1
        shift += 7
        if shift > 63:
            raise _Corrupt("varint longer than 10 bytes")


def _fields(buf: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, a, b) per field: for length-delimited fields (start, stop) of the bytes, for
    varints (value, 0), for fixed 32/64-bit fields (start, stop)."""
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > end:
                raise _Corrupt(f"field {field} runs past the end of its message")
            yield field, 2, pos, pos + n
            pos += n
        elif wire == 0:
            value, pos = _varint(buf, pos)
            yield field, 0, value, 0
        elif wire in (1, 5):
            n = 8 if wire == 1 else 4
            yield field, wire, pos, pos + n
            pos += n
        else:
            raise _Corrupt(f"unsupported wire type {wire}")
    if pos != end:
        raise _Corrupt("message runs past its end")


def _map(buf: bytes, start: int, end: int) -> dict[str, tuple[int, int]]:
    """A ``map<string, Message>`` (Features.feature, FeatureLists.feature_list): key -> (start, stop) of value."""
    entries = {}
    for field, wire, s, e in _fields(buf, start, end):
        if field != 1 or wire != 2:
            continue
        key, value = "", (s, s)
        for f2, w2, a, b in _fields(buf, s, e):
            if f2 == 1 and w2 == 2:
                key = buf[a:b].decode("utf-8", "replace")
            elif f2 == 2 and w2 == 2:
                value = (a, b)
        entries[key] = value
    return entries


def _kind(buf: bytes, span: tuple[int, int]) -> tuple[int, int, int]:
    """The oneof of a Feature: (1 bytes | 2 float | 3 int64 | 0 empty, start, stop of the list message)."""
    kind, a, b = 0, span[0], span[0]
    for field, wire, s, e in _fields(buf, *span):
        if wire == 2 and field in (1, 2, 3):
            kind, a, b = field, s, e
    return kind, a, b


def _bytes_list(buf: bytes, span: tuple[int, int], name: str) -> list[bytes]:
    kind, a, b = _kind(buf, span)
    if kind not in (0, 1):
        raise _Corrupt(f"feature {name!r} is not a bytes list")
    return [buf[s:e] for f, w, s, e in _fields(buf, a, b) if f == 1 and w == 2]


def _float_list(buf: bytes, span: tuple[int, int], name: str) -> np.ndarray:
    kind, a, b = _kind(buf, span)
    if kind not in (0, 2):
        raise _Corrupt(f"feature {name!r} is not a float list")
    chunks = []
    for field, wire, s, e in _fields(buf, a, b):
        if field == 1 and wire in (2, 5):  # packed, or one value per field
            if (e - s) % 4:
                raise _Corrupt(f"feature {name!r}: packed floats of {e - s} bytes")
            chunks.append(np.frombuffer(buf, "<f4", count=(e - s) // 4, offset=s))
    if len(chunks) == 1:
        return chunks[0].astype(np.float32)
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def _int64_list(buf: bytes, span: tuple[int, int], name: str) -> list[int]:
    kind, a, b = _kind(buf, span)
    if kind not in (0, 3):
        raise _Corrupt(f"feature {name!r} is not an int64 list")
    values = []
    for field, wire, s, e in _fields(buf, a, b):
        if field == 1 and wire == 0:
            values.append(s)
        elif field == 1 and wire == 2:  # packed
            pos = s
            while pos < e:
                v, pos = _varint(buf, pos)
                values.append(v)
            if pos != e:
                raise _Corrupt(f"feature {name!r}: packed int64 runs past its end")
    return [v - (1 << 64) if v >= 1 << 63 else v for v in values]


def _frames(buf: bytes, start: int, end: int, name: str) -> np.ndarray:
    """uint8 [frames, width] of a FeatureList of one-value bytes features."""
    if start == end:
        return np.zeros((0, 0), np.uint8)
    # Fast path: every frame is encoded identically (same header bytes, same width): one strided view.
    try:
        p = start
        if buf[p] == 0x0A:  # FeatureList.feature
            len1, p = _varint(buf, p + 1)
            p1 = p
            if buf[p] == 0x0A:  # Feature.bytes_list
                len2, p = _varint(buf, p + 1)
                p2 = p
                if buf[p] == 0x0A:  # BytesList.value
                    width, p = _varint(buf, p + 1)
                    header = p - start
                    stride = header + width
                    n, rest = divmod(end - start, stride)
                    if rest == 0 and len2 == p - p2 + width and len1 == p2 - p1 + len2:
                        rows = np.frombuffer(buf, np.uint8, count=n * stride, offset=start).reshape(n, stride)
                        if n == 1 or (rows[1:, :header] == rows[0, :header]).all():
                            return rows[:, header:]
    except IndexError:
        pass
    values = []
    for field, wire, s, e in _fields(buf, start, end):
        if field == 1 and wire == 2:
            frame = _bytes_list(buf, (s, e), name)
            if len(frame) != 1:
                raise _Corrupt(f"feature list {name!r}: a frame with {len(frame)} values instead of 1")
            values.append(frame[0])
    if not values:
        return np.zeros((0, 0), np.uint8)
    width = len(values[0])
    if any(len(v) != width for v in values):
        raise _Corrupt(f"feature list {name!r}: frames of different sizes")
    return np.frombuffer(b"".join(values), np.uint8).reshape(len(values), width)


def _context(buf: bytes, feats: dict[str, tuple[int, int]]) -> dict[str, Any]:
    key = "id" if "id" in feats else "video_id"
    ids = _bytes_list(buf, feats[key], key) if key in feats else []
    rec: dict[str, Any] = {
        "id": ids[0].decode("utf-8", "replace") if ids else "",
        "labels": _int64_list(buf, feats["labels"], "labels") if "labels" in feats else [],
    }
    for name in SEGMENT_FIELDS:
        if name in feats:
            if name == "segment_scores":
                rec[name] = _float_list(buf, feats[name], name).tolist()
            else:
                rec[name] = _int64_list(buf, feats[name], name)
    return rec


def parse_video(buf: bytes) -> dict[str, Any]:
    """A tf.train.Example payload -> {id, labels, rgb [D], audio [A] (float32), segment fields if any}."""
    features, other = (0, 0), False
    for field, wire, s, e in _fields(buf, 0, len(buf)):
        if field == 1 and wire == 2:
            features = (s, e)
        elif field == 2:
            other = True
    feats = _map(buf, *features)
    if "mean_rgb" not in feats and "mean_audio" not in feats:
        hint = "a frame-level record? use level='frame'" if other else "no 'mean_rgb' or 'mean_audio'"
        raise _Corrupt(f"not a video-level record ({hint})")
    rec = _context(buf, feats)
    for key, name in (("rgb", "mean_rgb"), ("audio", "mean_audio")):
        rec[key] = _float_list(buf, feats[name], name) if name in feats else np.zeros(0, np.float32)
    return rec


def parse_frame(buf: bytes, dequantize: bool = True) -> dict[str, Any]:
    """A tf.train.SequenceExample payload -> {id, labels, rgb [T, D], audio [T, A], segment fields if any};
    float32 dequantized values, or the uint8 bytes with ``dequantize=False``."""
    context, lists = (0, 0), None
    for field, wire, s, e in _fields(buf, 0, len(buf)):
        if wire == 2 and field == 1:
            context = (s, e)
        elif wire == 2 and field == 2:
            lists = (s, e)
    feats = _map(buf, *context)
    if lists is None:
        hint = "a video-level record? use level='video'" if "mean_rgb" in feats else "no feature lists"
        raise _Corrupt(f"not a frame-level record ({hint})")
    rec = _context(buf, feats)
    fl = _map(buf, *lists)
    if "rgb" not in fl and "audio" not in fl:
        raise _Corrupt("no 'rgb' or 'audio' feature list")
    rgb = _frames(buf, *fl["rgb"], "rgb") if "rgb" in fl else None
    audio = _frames(buf, *fl["audio"], "audio") if "audio" in fl else None
    n = len(rgb) if rgb is not None else len(audio)
    rgb = rgb if rgb is not None else np.zeros((n, 0), np.uint8)
    audio = audio if audio is not None else np.zeros((n, 0), np.uint8)
    if len(rgb) != len(audio):
        raise _Corrupt(f"{len(rgb)} rgb frames but {len(audio)} audio frames")
    rec["rgb"] = dequantize_features(rgb) if dequantize else rgb
    rec["audio"] = dequantize_features(audio) if dequantize else audio
    return rec


def dequantize_features(q: np.ndarray) -> np.ndarray:
    """uint8 -> float32 ``q * 4/255 + 4/512 - 2`` (the starter code's Dequantize, computed in float32)."""
    x = q.astype(np.float32)  # a cast, then in-place ops: faster than a mixed-type multiply
    x *= QUANT_SCALE
    x += QUANT_BIAS
    return x


def dequantize_batch(q: torch.Tensor) -> torch.Tensor:
    """uint8 tensor (any shape, any device) -> float32 with `dequantize_features`' formula.

    On the CPU the result is built by numpy, whose large allocations use huge pages: a fresh 44 MB torch tensor
    costs about 4x more in first-touch page faults on some VMs."""
    if q.device.type == "cpu":
        out = np.multiply(q.numpy(), QUANT_SCALE, dtype=np.float32)
        out += QUANT_BIAS
        return torch.from_numpy(out)
    return q.float().mul_(float(QUANT_SCALE)).add_(float(QUANT_BIAS))


def quantize_features(x: Any) -> np.ndarray:
    """float -> uint8, the inverse of `dequantize_features` (nearest level, clipped to [0, 255])."""
    y = np.asarray(x, dtype=np.float32) - QUANT_BIAS  # float32 throughout: 15x faster than float64
    y *= np.float32(1.0 / QUANT_SCALE)
    np.rint(y, out=y)
    np.clip(y, 0, 255, out=y)
    return y.astype(np.uint8)


def _vb(n: int) -> bytes:
    """A varint."""
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _ld(field: int, payload: bytes) -> bytes:
    """A length-delimited field (field numbers here are all < 16: a one-byte key)."""
    return bytes(((field << 3) | 2,)) + _vb(len(payload)) + payload


def _bytes_feature(values: list[bytes]) -> bytes:
    return _ld(1, b"".join(_ld(1, v) for v in values))


def _float_feature(values: Any) -> bytes:
    return _ld(2, _ld(1, np.asarray(values, dtype="<f4").ravel().tobytes()))


def _int64_feature(values: Iterable[int]) -> bytes:
    return _ld(3, _ld(1, b"".join(_vb(int(v) & 0xFFFFFFFFFFFFFFFF) for v in values)))


def _features(entries: dict[str, bytes]) -> bytes:
    """A Features (or FeatureLists) message: one map entry per key."""
    return b"".join(_ld(1, _ld(1, k.encode()) + _ld(2, v)) for k, v in entries.items())


def _frame_list(x: Any) -> bytes:
    """A FeatureList of quantized frames: header bytes + one row per frame, built as one uint8 array."""
    q = quantize_features(x)
    if q.ndim != 2:
        raise ValueError(f"frame-level features must be [frames, width], got shape {q.shape}")
    value = b"\x0a" + _vb(q.shape[1])
    bytes_list = b"\x0a" + _vb(len(value) + q.shape[1])
    feature = b"\x0a" + _vb(len(bytes_list) + len(value) + q.shape[1])
    header = np.frombuffer(feature + bytes_list + value, np.uint8)
    rows = np.empty((q.shape[0], len(header) + q.shape[1]), np.uint8)
    rows[:, : len(header)] = header
    rows[:, len(header) :] = q
    return rows.tobytes()


def _context_entries(rec: dict[str, Any]) -> dict[str, bytes]:
    entries = {"id": _bytes_feature([str(rec["id"]).encode()]), "labels": _int64_feature(rec["labels"])}
    for name in SEGMENT_FIELDS:
        if rec.get(name) is not None:
            is_float = name == "segment_scores"
            entries[name] = _float_feature(rec[name]) if is_float else _int64_feature(rec[name])
    return entries


def encode_video(rec: dict[str, Any]) -> bytes:
    """A record dict -> tf.train.Example bytes (mean_rgb / mean_audio as float lists)."""
    entries = _context_entries(rec)
    for key, name in (("rgb", "mean_rgb"), ("audio", "mean_audio")):
        if rec.get(key) is not None:
            entries[name] = _float_feature(rec[key])
    return _ld(1, _features(entries))


def encode_frame(rec: dict[str, Any]) -> bytes:
    """A record dict -> tf.train.SequenceExample bytes (rgb / audio quantized to one byte per value)."""
    lists = {key: _frame_list(rec[key]) for key in ("rgb", "audio") if rec.get(key) is not None}
    if len({len(np.asarray(rec[k])) for k in lists}) > 1:
        raise ValueError(f"record {rec['id']!r}: rgb and audio have different numbers of frames")
    return _ld(1, _features(_context_entries(rec))) + _ld(2, _features(lists))


# ---------------------------------------------------------------------------------------------------------------------
# Public reading and writing


def check_level(level: str) -> None:
    """A ValueError unless ``level`` is "video" or "frame"."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")


def _parse(payload: bytes, level: str, path: Path, offset: int, dequantize: bool = True) -> dict[str, Any]:
    try:
        return parse_video(payload) if level == "video" else parse_frame(payload, dequantize)
    except (_Corrupt, IndexError, ValueError, UnicodeDecodeError) as exc:
        raise MMKitError(
            f"{path}: record at byte {offset}: unparsable {level}-level protobuf ({exc})"
        ) from exc


def read_records(
    paths: PathSpec, level: str = "video", *, verify_crc: bool = True
) -> Iterator[dict[str, Any]]:
    """Yield one dict per record of the files: ``id`` (str), ``labels`` (list[int]), float32 ``rgb`` and
    ``audio`` ([D] at video level, [frames, D] at frame level), and ``segment_labels``,
    ``segment_start_times``, ``segment_scores`` when the record has them. A bad CRC, a truncated file or an
    unparsable payload raises MMKitError naming the file and the record's byte offset."""
    check_level(level)
    for path in expand_paths(paths):
        for offset, payload in iter_payloads(path, verify_crc):
            yield _parse(payload, level, path, offset)


def read_record_at(
    path: Path, offset: int, level: str, *, verify_crc: bool = True, dequantize: bool = True
) -> dict[str, Any]:
    """The record at byte ``offset`` of one file (an offset from `index_records`), parsed as `read_records` yields
    it; frame-level features stay uint8 with ``dequantize=False``. MMKitError naming the file and the offset."""
    with _open(path) as f:
        f.seek(offset)
        length = _read_header(f, path, offset, os.fstat(f.fileno()).st_size)
        if length is None:
            raise MMKitError(f"{path}: record at byte {offset}: missing (file changed since indexing?)")
        payload = _read_payload(f, path, offset, length, verify_crc)
    return _parse(payload, level, path, offset, dequantize)


def write_records(path: str | os.PathLike, records: Iterable[dict[str, Any]], level: str = "video") -> int:
    """Write records (dicts as `read_records` yields) to one TFRecord file; returns how many were written.
    Frame-level features are quantized to one byte per value; video-level ones stay float32."""
    check_level(level)
    encode = encode_video if level == "video" else encode_frame
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "wb") as f:
        for rec in records:
            f.write(frame_record(encode(rec)))
            n += 1
    return n
