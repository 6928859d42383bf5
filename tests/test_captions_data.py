"""Caption data: coco-caption tokenization, vocabulary, COCO/Karpathy/paragraph files, synthetic scenes, Dataset."""

import json
import logging
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pycocoevalcap
import pytest
import torch
from PIL import Image

from mmkit.cli import app
from mmkit.cli.common import run_cli
from mmkit.data.captions import CaptionDataset, CaptionSplit, load_caption_data
from mmkit.data.formats.captions import (
    CaptionedImage,
    Vocabulary,
    attach_paragraphs,
    read_coco_captions,
    read_karpathy_split,
    read_paragraphs,
    split_sentences,
    tokenize,
    write_coco_captions,
    write_paragraphs,
)
from mmkit.data.formats.ptb_tokenizer import PUNCTUATIONS, ptb_tokens
from mmkit.data.synthetic_captions import (
    COLORS,
    DIGIT_WORDS,
    SyntheticCaptionScenes,
    make_caption_scene,
    write_synthetic_captions,
)
from mmkit.errors import MMKitError

# Stanford PTBTokenizer 3.4.1 (the jar pycocoevalcap ships), `-preserveLines -lowerCase`, each line followed by
# a line "A a" as in coco-caption's file of captions: input -> its output, copied from the jar.
PTB_CASES = [
    (
        "A man's \"big\" dog (brown) can't run -- fast!",
        "a man 's `` big '' dog -lrb- brown -rrb- ca n't run -- fast !",
    ),
    ("It's 5:30 p.m. in the U.S.A.", "it 's 5:30 p.m. in the u.s.a. ."),
    ("Mr. Smith and Dr. Jones went to St. Louis.", "mr. smith and dr. jones went to st. louis ."),
    ("There are 1,000 birds at 3.5 degrees.", "there are 1,000 birds at 3.5 degrees ."),
    ("He paid $5 for a #1 hot-dog, 50% off.", "he paid $ 5 for a # 1 hot-dog , 50 % off ."),
    ("A person [in red] holds {something}.", "a person -lsb- in red -rsb- holds -lcb- something -rcb- ."),
    (
        "I'm sure you'll see they're fine, we've said he'd go.",
        "i 'm sure you 'll see they 're fine , we 've said he 'd go .",
    ),
    (
        "\u201cQuoted\u201d text and \u2018single\u2019 ones \u2013 with dashes \u2014 here.",
        "`` quoted '' text and ` single ' ones -- with dashes -- here .",
    ),
    ("half \u00bd a pizza... and a cake!!", "half 1/2 a pizza ... and a cake !!"),
    ("cannot gonna gotta wanna", "can not gon na got ta wan na"),
    ("rock 'n' roll at o'clock in the '90s", "rock 'n' roll at o'clock in the '90s"),
    ("A 10-year-old boy on a black/white e-mail.", "a 10-year-old boy on a black/white e-mail ."),
    ("A dog . . . and a cat", "a dog ... and a cat"),
    ("A pic of a dog :)", "a pic of a dog :-rrb-"),
    ("Two dogs' bowls and James' toy", "two dogs ' bowls and james ' toy"),
]


@pytest.mark.parametrize(("text", "expected"), PTB_CASES)
def test_ptb_tokens_match_stanford(text, expected):
    assert ptb_tokens(text) == expected.split(" ")
    # coco-caption then drops its punctuation list (upper-case -LRB- never matches, so -lrb- stays)
    assert tokenize(text) == [t for t in expected.split(" ") if t not in PUNCTUATIONS]


def test_tokenize_drops_punctuation_and_case():
    assert tokenize("A Man, riding a horse... on the beach!") == [
        "a",
        "man",
        "riding",
        "a",
        "horse",
        "on",
        "the",
        "beach",
    ]
    assert tokenize("The dog's (small) toy.") == ["the", "dog", "'s", "-lrb-", "small", "-rrb-", "toy"]
    assert tokenize("") == [] and tokenize("  .  ") == []
    assert tokenize("two\nlines") == ["two", "lines"]  # coco-caption replaces newlines by spaces


_JAR = Path(next(iter(pycocoevalcap.__path__))) / "tokenizer"  # pycocoevalcap is a namespace package


def _noisy_captions(n: int, seed: int) -> list[str]:
    r = random.Random(seed)
    words = [
        "a",
        "man",
        "woman",
        "dog",
        "sitting",
        "on",
        "the",
        "table",
        "with",
        "two",
        "of",
        "next",
        "to",
        "is",
        "red",
        "large",
        "giraffe",
        "pizza",
        "Mr",
        "St",
        "U.S.",
        "it's",
        "don't",
        "can't",
        "won't",
        "they're",
        "cannot",
        "gonna",
        "1,000",
        "3.5",
        "5:30",
        "$5",
        "50%",
        "well-known",
        "e-mail",
        "o'clock",
        "dogs'",
        "Jan.",
        "etc.",
        "vs.",
        "a.m.",
        "Dr.",
        "No.",
        "5",
        "x-ray",
        "black/white",
        "1/2",
        "10-year-old",
        "cat's",
    ]
    marks = list(".,;:!?'\"()-[]{}/&$%#*") + ["...", "--", " - ", " '", '" ']
    lines = []
    for _ in range(n):
        tokens = []
        for _ in range(r.randint(3, 12)):
            w = r.choice(words)
            w = w.capitalize() if r.random() < 0.2 else w
            if r.random() < 0.25:
                m = r.choice(marks)
                w = m + w if r.random() < 0.3 else w + m
            tokens.append(w)
        lines.append(" ".join(tokens) + r.choice([".", "!", " .", "...", ""]))
    return lines


@pytest.mark.skipif(
    shutil.which("java") is None or not (_JAR / "stanford-corenlp-3.4.1.jar").is_file(),
    reason="needs java and pycocoevalcap's Stanford jar",
)
def test_ptb_tokens_agree_with_the_jar_on_random_captions(tmp_path):
    lines = _noisy_captions(400, seed=11)
    src = tmp_path / "captions.txt"
    src.write_text("\n".join(f"{line}\nA a" for line in lines), encoding="utf-8")
    cmd = ["java", "-cp", str(_JAR / "stanford-corenlp-3.4.1.jar"), "edu.stanford.nlp.process.PTBTokenizer"]
    out = subprocess.run([*cmd, "-preserveLines", "-lowerCase", str(src)], capture_output=True, check=True)
    jar = out.stdout.decode("utf-8").split("\n")[0::2]
    mismatches = [
        (line, j) for line, j in zip(lines, jar, strict=False) if " ".join(ptb_tokens(line)) != j.strip()
    ]
    assert not mismatches, mismatches[:3]


def test_vocabulary_min_count_ids_and_round_trip(tmp_path):
    captions = ["a red circle", "a blue circle", "a red square", "one zebra"]
    vocab = Vocabulary.build((tokenize(c) for c in captions), min_count=2)
    assert vocab.itos[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert vocab.itos[4:] == ["a", "circle", "red"]  # by count, then alphabetically; blue/square/zebra < 2
    assert len(vocab) == 7 and "red" in vocab and "zebra" not in vocab
    ids = vocab.encode(tokenize("A red zebra circle."), max_len=3)
    assert ids == [1, vocab.stoi["a"], vocab.stoi["red"], 3, 2]  # truncated to 3 words, zebra unknown
    assert vocab.decode(ids + [0, 0]) == "a red <unk>"
    assert vocab.decode([1, 6, 5, 2, 4, 4]) == "red circle"  # stops at <eos>
    torch.save({"vocab": vocab.to_dict()}, tmp_path / "ckpt.pt")
    back = Vocabulary.from_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True)["vocab"])
    assert back.itos == vocab.itos and back.min_count == 2
    with pytest.raises(MMKitError, match="not a vocabulary"):
        Vocabulary.from_dict({"itos": ["a", "b"]})


def _images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"im{i}.png"
        Image.fromarray(np.full((12, 16, 3), 40 * i, np.uint8)).save(path)
        paths.append(path)
    return paths


def test_coco_captions_and_paragraphs_round_trip(tmp_path):
    paths = _images(tmp_path / "images", 3)
    items = [
        CaptionedImage(10, paths[0], ["A cat.", "A small cat."], "A cat. It sits."),
        CaptionedImage(11, paths[1], ["Two dogs."]),
        CaptionedImage(12, paths[2], []),  # a test image has no captions
    ]
    ann = write_coco_captions(tmp_path / "annotations" / "captions_val.json", items, tmp_path / "images")
    data = json.loads(ann.read_text())
    assert data["images"][0] == {"id": 10, "file_name": "im0.png", "width": 16, "height": 12}
    assert [a["caption"] for a in data["annotations"]] == ["A cat.", "A small cat.", "Two dogs."]
    back = read_coco_captions(ann)  # images found by guessing root/images
    assert [(b.image_id, b.path, b.captions, b.width) for b in back] == [
        (i.image_id, i.path, i.captions, 16) for i in items
    ]
    write_paragraphs(tmp_path / "annotations" / "paragraphs_val.json", items)
    paragraphs = read_paragraphs(tmp_path / "annotations" / "paragraphs_val.json")
    assert paragraphs == {10: "A cat. It sits."}
    attach_paragraphs(back, paragraphs, "p.json")
    assert back[0].paragraph == "A cat. It sits." and back[1].paragraph is None
    with pytest.raises(MMKitError, match="p.json: paragraph of unknown image id 99"):
        attach_paragraphs(back, {99: "x"}, "p.json")
    assert split_sentences("A cat sits. It is red!The sky.  ") == ["A cat sits.", "It is red!", "The sky."]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read JSON"),
        ('{"images": []}', "not a COCO captions file"),
        ('{"images": [{"file_name": "a.png"}], "annotations": []}', r"images\[0\] has no 'id'"),
        (
            '{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"id": 5, "image_id": 1}]}',
            "annotation 5",
        ),
        (
            '{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"id": 7, "image_id": 2, "caption": "x"}]}',
            "annotation 7 refers to unknown image id 2",
        ),
    ],
)
def test_malformed_coco_captions_name_the_file(tmp_path, content, message):
    path = tmp_path / "captions_train.json"
    path.write_text(content)
    with pytest.raises(MMKitError, match=message) as info:
        read_coco_captions(path)
    assert str(path) in str(info.value)


def test_missing_image_file_names_the_entry(tmp_path):
    _images(tmp_path / "images", 1)
    items = [CaptionedImage(1, tmp_path / "images" / "im0.png", ["x"]), CaptionedImage(2, None, ["y"])]
    path = write_coco_captions(tmp_path / "captions_val.json", items, tmp_path / "images")
    with pytest.raises(MMKitError, match=r"captions_val.json: image 2: file not found: .*2.jpg"):
        read_coco_captions(path, tmp_path / "images")
    bad = tmp_path / "paragraphs_val.json"
    bad.write_text('[{"image_id": 1}]')
    with pytest.raises(MMKitError, match="paragraphs_val.json: entry 0 needs"):
        read_paragraphs(bad)


def _karpathy(tmp_path: Path, split_of_second: str = "restval") -> Path:
    for sub in ("train2014", "val2014"):
        _images(tmp_path / sub, 2)
    entries = [
        ("train2014", "im0.png", "train", 101),
        ("val2014", "im0.png", split_of_second, 102),
        ("val2014", "im1.png", "val", 103),
        ("train2014", "im1.png", "test", 104),
    ]
    images = [
        {
            "filepath": fp,
            "filename": fn,
            "split": sp,
            "cocoid": cid,
            "imgid": k,
            "sentences": [{"raw": f"Caption {cid} a.", "tokens": ["caption"]}, {"raw": f"Caption {cid} b."}],
        }
        for k, (fp, fn, sp, cid) in enumerate(entries)
    ]
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps({"images": images, "dataset": "coco"}))
    return path


def test_karpathy_split(tmp_path):
    splits = read_karpathy_split(_karpathy(tmp_path))
    assert {k: [i.image_id for i in v] for k, v in splits.items()} == {
        "train": [101, 102],
        "val": [103],
        "test": [104],
    }
    assert splits["train"][1].path == tmp_path / "val2014" / "im0.png"
    assert splits["test"][0].captions == ["Caption 104 a.", "Caption 104 b."]
    data = load_caption_data(tmp_path / "dataset_coco.json")
    assert data.sizes() == {"train": 2, "val": 1, "test": 1}
    assert data.train.image(0).shape == (12, 16, 3)
    with pytest.raises(MMKitError, match=r"dataset_coco.json: images\[1\] \(im0.png\): unknown split 'dev'"):
        read_karpathy_split(_karpathy(tmp_path, "dev"))
    path = _karpathy(tmp_path)
    (tmp_path / "val2014" / "im1.png").unlink()
    with pytest.raises(MMKitError, match=r"images\[2\]: file not found: .*val2014/im1.png"):
        read_karpathy_split(path)


def test_scenes_are_deterministic_and_captions_name_every_object():
    a, b = SyntheticCaptionScenes(40, seed=5), SyntheticCaptionScenes(40, seed=5)
    other = SyntheticCaptionScenes(40, seed=6)
    assert all(a[i] == b[i] and np.array_equal(a.image(i), b.image(i)) for i in range(5))
    assert any(a[i].captions != other[i].captions for i in range(5))
    assert a.image(0).shape == (64, 64, 3) and a.image(0).dtype == np.uint8
    relation_words = {
        "h": ("left", "right"),
        "v": ("above", "over", "top", "below", "under", "beneath", "bottom"),
    }
    for i in range(40):
        spec = a.spec(i)
        assert len(spec.captions) == 5 == len(set(spec.captions))
        for caption in spec.captions:
            words = tokenize(caption)
            for obj in spec.objects:
                assert obj.color in words
                assert {"small": {"small", "little"}, "large": {"large", "big"}}[obj.size] & set(words)
                kind = {obj.kind, DIGIT_WORDS[int(obj.kind)]} if obj.kind.isdigit() else {obj.kind, "disk"}
                assert kind & set(words), (caption, obj)
            if len(spec.objects) > 1:
                assert set(relation_words[spec.axis]) & set(words), caption
        sentences = split_sentences(spec.paragraph)
        assert (
            len(sentences) == 1 + 2 * len(spec.objects) - 1
        )  # count, one per object, one per neighbour pair


def _centroid(image: np.ndarray, color: str) -> tuple[float, float, float]:
    """Mean (x, y) and height of the pixels close to ``color`` (objects are drawn over a dark background)."""
    close = np.abs(image.astype(np.int32) - np.array(COLORS[color])).max(axis=2) < 60
    ys, xs = np.nonzero(close)
    return xs.mean(), ys.mean(), ys.max() - ys.min() + 1


def test_scene_pictures_match_their_text():
    scenes = SyntheticCaptionScenes(150, seed=2)
    checked = 0
    for i in range(len(scenes)):
        spec, image = scenes.spec(i), scenes.image(i)
        colors = [o.color for o in spec.objects]
        if len(set(colors)) < len(colors) or len(colors) < 2:
            continue
        stats = [_centroid(image, c) for c in colors]
        along = [s[0] if spec.axis == "h" else s[1] for s in stats]
        assert along == sorted(along), (i, spec)  # reading order: left to right, or top to bottom
        for obj, (_, _, height) in zip(spec.objects, stats, strict=True):
            if obj.kind in ("circle", "square"):  # shapes fill their height; a thin digit stroke may not
                assert (height >= 15) == (obj.size == "large"), (i, obj, height)
        checked += 1
    assert checked > 40


def test_make_caption_scene_other_size():
    image, captions, paragraph = make_caption_scene(np.random.default_rng(0), 96)
    assert image.shape == (96, 96, 3) and len(captions) == 5 and paragraph.endswith(".")


def test_caption_dataset_modes():
    scenes = SyntheticCaptionScenes(8, seed=1)
    vocab = Vocabulary.build(
        [tokenize(c) for i in range(8) for c in scenes[i].captions]
        + [tokenize(s) for i in range(8) for s in split_sentences(scenes[i].paragraph)],
        min_count=1,
    )
    ds = CaptionDataset(scenes, vocab, max_len=12, train=False)
    image, tokens, index = ds[3]
    assert (
        image.shape == (3, 64, 64) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
    )
    assert tokens.shape == (14,) and tokens.dtype == torch.int64 and index == 3
    assert vocab.decode(tokens.tolist()) == " ".join(tokenize(scenes[3].captions[0])[:12])
    train = CaptionDataset(scenes, vocab, max_len=30, transform=lambda x: x[:1].float(), train=True)
    torch.manual_seed(0)
    picked = {vocab.decode(train[3][1].tolist()) for _ in range(30)}
    assert len(picked) > 1 and picked <= {" ".join(tokenize(c)) for c in scenes[3].captions}
    assert train[3][0].shape == (1, 64, 64)
    para = CaptionDataset(scenes, vocab, max_len=20, mode="paragraph", max_sentences=6, train=False)
    image, tokens, count, index = para[5]
    sentences = split_sentences(scenes[5].paragraph)
    assert tokens.shape == (6, 22) and count == len(sentences) and index == 5
    assert [vocab.decode(r) for r in tokens[:count].tolist()] == [" ".join(tokenize(s)) for s in sentences]
    assert tokens[count:].eq(0).all() and tokens[:count, 0].eq(Vocabulary.BOS).all()
    with pytest.raises(ValueError, match="mode"):
        CaptionDataset(scenes, vocab, mode="words")


def test_unreadable_image_is_skipped_with_a_warning(tmp_path, caplog):
    paths = _images(tmp_path, 2)
    paths[1].write_bytes(b"not a png")
    split = CaptionSplit([CaptionedImage(i, p, ["a cat"]) for i, p in enumerate(paths)])
    ds = CaptionDataset(split, Vocabulary(["a", "cat"]), train=False)
    assert ds[0] is not None
    with caplog.at_level(logging.WARNING):
        assert ds[1] is None
    assert "im1.png" in caplog.text


def test_synth_cli_writes_a_folder_load_caption_data_reads(tmp_path, capsys):
    out = tmp_path / "scenes"
    assert run_cli(app, ["data", "synth", "captions", "--out", str(out), "--n", "12", "--seed", "4"]) == 0
    assert "12 train + 1 val + 1 test" in capsys.readouterr().out
    data = load_caption_data(out)
    assert data.sizes() == {"train": 12, "val": 1, "test": 1} and not data.skipped
    scenes = SyntheticCaptionScenes(12, seed=4)
    assert data.train[5].captions == scenes[5].captions and data.train[5].paragraph == scenes[5].paragraph
    assert np.array_equal(data.train.image(5), scenes.image(5))
    assert data.test[0].image_id == 13  # ids are unique across splits
    single = load_caption_data(out / "annotations" / "captions_train.json", seed=1)
    assert (len(single.train), len(single.val), len(single.test)) == (11, 1, 0)  # val carved from train
    (out / "images" / "train_000003.png").write_bytes(b"junk")
    data = load_caption_data(out)
    assert len(data.train) == 11 and "train_000003.png" in data.skipped[0][0]
    write_synthetic_captions(tmp_path / "again", n=12, seed=4)
    assert (tmp_path / "again/annotations/captions_val.json").read_bytes() == (
        out / "annotations/captions_val.json"
    ).read_bytes()


def test_builtins_and_unknown_spec():
    data = load_caption_data("caption-scenes")
    assert data.sizes() == {"train": 3000, "val": 300, "test": 300} and data.image_size == 64
    large = load_caption_data("caption-scenes-large")
    assert len(large.train) == 20000 and large.val[7] == data.val[7]
    assert np.array_equal(large.val.image(7), data.val.image(7))
    assert large.train[2999].captions == data.train[2999].captions
    ids = [
        d.image_id
        for split in (large.train, large.val, large.test)
        for d in (split[0], split[len(split) - 1])
    ]
    assert len(set(ids)) == len(ids)
    with pytest.raises(MMKitError, match="nope: not a caption dataset.*caption-scenes, caption-scenes-large"):
        load_caption_data("nope")
