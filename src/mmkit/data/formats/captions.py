"""Caption files: COCO captions JSON, Karpathy's split JSON, Stanford image-paragraph JSON; the vocabulary.

- COCO (``captions_<split>.json``): ``{"images": [{id, file_name, width, height}], "annotations": [{id, image_id,
  caption}]}``; an image may have any number of captions (COCO has 5-7, a test split none).
- Karpathy (``dataset_coco.json``, ``dataset_flickr8k.json``, ...): ``{"images": [{filepath?, filename, split,
  sentences: [{raw, tokens}], cocoid | imgid}]}`` with split train / val / test / restval (restval is training data).
- Paragraphs (``paragraphs_<split>.json``, Krause et al.'s format): ``[{"image_id", "paragraph"}]``.

Captions are kept as written; ``tokenize`` is coco-caption's tokenization (``mmkit.data.formats.ptb_tokenizer``),
the one the metrics use too. ``Vocabulary`` maps tokens to the fixed ids the captioning models use.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mmkit.data.formats.ptb_tokenizer import PUNCTUATIONS, ptb_tokens, tokenize
from mmkit.errors import MMKitError

__all__ = [
    "PUNCTUATIONS",
    "CaptionedImage",
    "Vocabulary",
    "attach_paragraphs",
    "ptb_tokens",
    "read_coco_captions",
    "read_karpathy_split",
    "read_paragraphs",
    "split_sentences",
    "tokenize",
    "write_coco_captions",
    "write_paragraphs",
]

ImageId = int | str


@dataclass
class CaptionedImage:
    """One image and its reference text. ``path`` is None when the images are not at hand (scoring only)."""

    image_id: ImageId
    path: Path | None
    captions: list[str]
    paragraph: str | None = None
    width: int | None = None
    height: int | None = None


def _read_json(path: Path) -> object:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MMKitError(f"{path}: cannot read JSON ({str(exc).splitlines()[0]})") from exc


def _image_id(value: object, path: Path, what: str) -> ImageId:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MMKitError(f"{path}: {what}: image id must be an integer or a string, got {value!r}")
    return value


def _guess_image_dir(json_path: Path, names: list[str]) -> Path | None:
    """The usual places of ``captions_<split>.json``'s images: ``root/images/<split>``, ``root/<split>``,
    ``root/images``, ``root`` (``root`` is the folder above ``annotations/``), then the JSON's folder."""
    split = json_path.stem.removeprefix("captions_")
    root = json_path.parent.parent if json_path.parent.name == "annotations" else json_path.parent
    candidates = [root / "images" / split, root / split, root / "images", root, json_path.parent]
    for folder in dict.fromkeys(candidates):
        if folder.is_dir() and any((folder / name).is_file() for name in names[:20]):
            return folder
    return None


def read_coco_captions(
    json_path: str | os.PathLike, image_dir: str | os.PathLike | None = None
) -> list[CaptionedImage]:
    """Images of a COCO captions file with their captions, in the file's image order.

    With ``image_dir`` every image's ``file_name`` must exist in it. Without, the usual folders next to the JSON
    are tried (see ``_guess_image_dir``); when none holds the images, paths are None (enough for scoring).
    MMKitError names the file and the entry for bad JSON, a missing key, an annotation of an unknown image,
    a duplicate image id or a missing image file.
    """
    path = Path(json_path)
    data = _read_json(path)
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), list) for k in ("images", "annotations")
    ):
        raise MMKitError(f"{path}: not a COCO captions file (needs 'images' and 'annotations' lists)")
    items: dict[ImageId, CaptionedImage] = {}
    names: dict[ImageId, str] = {}
    for k, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img:
            raise MMKitError(f"{path}: images[{k}] has no 'id'")
        image_id = _image_id(img["id"], path, f"images[{k}]")
        if image_id in items:
            raise MMKitError(f"{path}: image {image_id!r} is listed twice")
        name = img.get("file_name")
        if name is not None and not isinstance(name, str):
            raise MMKitError(f"{path}: image {image_id!r}: 'file_name' must be a string")
        if name:
            names[image_id] = name
        size = [img.get(key) if isinstance(img.get(key), int) else None for key in ("width", "height")]
        items[image_id] = CaptionedImage(image_id, None, [], width=size[0], height=size[1])
    for k, ann in enumerate(data["annotations"]):
        where = f"annotation {ann.get('id', k)!r}" if isinstance(ann, dict) else f"annotations[{k}]"
        if not isinstance(ann, dict) or "image_id" not in ann or not isinstance(ann.get("caption"), str):
            raise MMKitError(f"{path}: {where} needs an 'image_id' and a 'caption' string")
        item = items.get(ann["image_id"])
        if item is None:
            raise MMKitError(f"{path}: {where} refers to unknown image id {ann['image_id']!r}")
        item.captions.append(ann["caption"])
    folder = Path(image_dir) if image_dir is not None else _guess_image_dir(path, list(names.values()))
    if folder is not None:
        for image_id, item in items.items():
            if image_id not in names:
                raise MMKitError(f"{path}: image {image_id!r} has no 'file_name'")
            item.path = folder / names[image_id]
            if not item.path.is_file():
                raise MMKitError(f"{path}: image {image_id!r}: file not found: {item.path}")
    return list(items.values())


def _file_name(item: CaptionedImage, image_dir: Path | None) -> str:
    if item.path is None:
        return f"{item.image_id}.jpg"
    if image_dir is not None:
        try:
            return Path(item.path).relative_to(image_dir).as_posix()
        except ValueError:
            pass
    return Path(item.path).name


def write_coco_captions(
    path: str | os.PathLike, items: Iterable[CaptionedImage], image_dir: str | os.PathLike | None = None
) -> Path:
    """Write ``items`` as a COCO captions file; ``file_name`` is each path relative to ``image_dir`` (else its
    name). Sizes come from the items, or from the image file's header when missing. Returns the path."""
    from PIL import Image

    path = Path(path)
    root = Path(image_dir) if image_dir is not None else None
    images, annotations = [], []
    for item in items:
        width, height = item.width, item.height
        if (width is None or height is None) and item.path is not None and Path(item.path).is_file():
            with Image.open(item.path) as im:
                width, height = im.size
        entry = {"id": item.image_id, "file_name": _file_name(item, root)}
        if width is not None and height is not None:
            entry.update(width=int(width), height=int(height))
        images.append(entry)
        for caption in item.captions:
            annotations.append({"id": len(annotations) + 1, "image_id": item.image_id, "caption": caption})
    data = {
        "info": {"description": "captions written by mmkit"},
        "images": images,
        "annotations": annotations,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def read_paragraphs(json_path: str | os.PathLike) -> dict[ImageId, str]:
    """``{image_id: paragraph}`` from a ``[{"image_id", "paragraph"}]`` file (Stanford image-paragraph format)."""
    path = Path(json_path)
    data = _read_json(path)
    if not isinstance(data, list):
        raise MMKitError(f"{path}: not a paragraphs file (needs a list of {{'image_id', 'paragraph'}})")
    out: dict[ImageId, str] = {}
    for k, entry in enumerate(data):
        if (
            not isinstance(entry, dict)
            or "image_id" not in entry
            or not isinstance(entry.get("paragraph"), str)
        ):
            raise MMKitError(f"{path}: entry {k} needs an 'image_id' and a 'paragraph' string")
        image_id = _image_id(entry["image_id"], path, f"entry {k}")
        if image_id in out:
            raise MMKitError(f"{path}: entry {k}: image {image_id!r} has a second paragraph")
        out[image_id] = entry["paragraph"]
    return out


def write_paragraphs(path: str | os.PathLike, items: Iterable[CaptionedImage]) -> Path:
    """Write the paragraphs of ``items`` (those that have one) as ``[{"image_id", "paragraph"}]``."""
    path = Path(path)
    data = [{"image_id": i.image_id, "paragraph": i.paragraph} for i in items if i.paragraph is not None]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def attach_paragraphs(items: Sequence[CaptionedImage], paragraphs: dict[ImageId, str], source: str) -> None:
    """Set each item's paragraph from ``paragraphs``; MMKitError naming ``source`` for an id without an image."""
    by_id = {item.image_id: item for item in items}
    for image_id, text in paragraphs.items():
        if image_id not in by_id:
            raise MMKitError(f"{source}: paragraph of unknown image id {image_id!r}")
        by_id[image_id].paragraph = text


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[a-z][.!?])(?=[A-Z])")


def split_sentences(paragraph: str) -> list[str]:
    """The sentences of a paragraph: split after . ! ? followed by a space (or glued to a capital, as in
    Stanford's paragraphs: "the sky.The man"); empty pieces dropped."""
    return [s.strip() for s in _SENTENCE_END.split(paragraph.strip()) if s.strip()]


KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "val", "test": "test"}


def read_karpathy_split(
    json_path: str | os.PathLike, image_root: str | os.PathLike | None = None
) -> dict[str, list[CaptionedImage]]:
    """``{"train", "val", "test"}`` lists from Karpathy's ``dataset_*.json`` (restval goes to train).

    Image paths are ``image_root / filepath / filename`` (``filepath`` is absent in the Flickr files);
    ``image_root`` defaults to the JSON's folder. The image id is ``cocoid`` when present, else ``imgid``.
    MMKitError names the file and the entry for bad JSON, missing keys, an unknown split or a missing image.
    """
    path = Path(json_path)
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise MMKitError(f"{path}: not a Karpathy split file (needs an 'images' list)")
    root = Path(image_root) if image_root is not None else path.parent
    splits: dict[str, list[CaptionedImage]] = {"train": [], "val": [], "test": []}
    for k, img in enumerate(data["images"]):
        if not isinstance(img, dict) or not isinstance(img.get("filename"), str):
            raise MMKitError(f"{path}: images[{k}] has no 'filename'")
        split = KARPATHY_SPLITS.get(img.get("split"))  # type: ignore[arg-type]
        if split is None:
            raise MMKitError(f"{path}: images[{k}] ({img['filename']}): unknown split {img.get('split')!r}")
        sentences = img.get("sentences")
        if not isinstance(sentences, list) or not all(
            isinstance(s, dict) and isinstance(s.get("raw"), str) for s in sentences
        ):
            raise MMKitError(
                f"{path}: images[{k}] ({img['filename']}): 'sentences' must be a list of {{'raw'}}"
            )
        raw_id = img.get("cocoid", img.get("imgid", k))
        image_file = root / str(img.get("filepath", "")) / img["filename"]
        if not image_file.is_file():
            raise MMKitError(f"{path}: images[{k}]: file not found: {image_file}")
        item = CaptionedImage(
            _image_id(raw_id, path, f"images[{k}]"), image_file, [s["raw"] for s in sentences]
        )
        splits[split].append(item)
    return splits


class Vocabulary:
    """Token <-> id map built from training captions. Ids 0-3 are ``<pad> <bos> <eos> <unk>`` (fixed: the
    captioning models rely on them), then the words, most frequent first (ties in alphabetical order)."""

    PAD, BOS, EOS, UNK = 0, 1, 2, 3
    SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")

    def __init__(self, words: Iterable[str], min_count: int = 1):
        words = [w for w in words if w not in self.SPECIALS]
        self.itos: list[str] = list(self.SPECIALS) + words
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("vocabulary words must be unique")
        self.min_count = int(min_count)

    @classmethod
    def build(
        cls, token_lists: Iterable[Sequence[str]], min_count: int = 5, max_size: int | None = None
    ) -> Vocabulary:
        """Words seen at least ``min_count`` times (Karpathy's neuraltalk2 drops words seen 5 times or less,
        i.e. ``min_count=6``), at most ``max_size`` of them; the rest map to ``<unk>``."""
        counts = Counter(t for tokens in token_lists for t in tokens)
        words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls(words[:max_size] if max_size is not None else words, min_count)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, word: object) -> bool:
        return word in self.stoi

    def encode(self, tokens: Sequence[str], max_len: int) -> list[int]:
        """``<bos>``, the ids of the first ``max_len`` tokens (unknown ones as ``<unk>``), ``<eos>``; unpadded."""
        ids = [self.stoi.get(t, self.UNK) for t in tokens[:max_len]]
        return [self.BOS, *ids, self.EOS]

    def decode(self, ids: Iterable[int]) -> str:
        """The words of ``ids`` joined by spaces, up to the first ``<eos>``; ``<pad>`` and ``<bos>`` skipped."""
        words = []
        for i in ids:
            i = int(i)
            if i == self.EOS:
                break
            if i in (self.PAD, self.BOS):
                continue
            words.append(self.itos[i] if 0 <= i < len(self.itos) else self.SPECIALS[self.UNK])
        return " ".join(words)

    def to_dict(self) -> dict:
        """Plain data (lists, str, int) for a ``torch.load(weights_only=True)`` checkpoint."""
        return {"itos": list(self.itos), "min_count": self.min_count}

    @classmethod
    def from_dict(cls, data: dict) -> Vocabulary:
        """The inverse of ``to_dict``; MMKitError when the data is not a vocabulary."""
        itos = data.get("itos") if isinstance(data, dict) else None
        if (
            not isinstance(itos, list)
            or tuple(itos[:4]) != cls.SPECIALS
            or not all(isinstance(w, str) for w in itos)
        ):
            raise MMKitError(f"not a vocabulary (expected 'itos' starting with {list(cls.SPECIALS)})")
        return cls(itos[4:], int(data.get("min_count", 1)))
