"""BLEU-1..4 and CIDEr-D as coco-caption computes them, and what they tell apart on synthetic scenes."""

import random
import shutil
from dataclasses import replace

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

from mmkit.data.formats.captions import tokenize
from mmkit.data.formats.ptb_tokenizer import PUNCTUATIONS, ptb_tokens, tokenize_lines
from mmkit.data.synthetic_captions import SyntheticCaptionScenes, describe
from mmkit.errors import MMKitError
from mmkit.metrics.captioning import METRICS, score, tokenized

REFS = {
    1: ["A man riding a horse on the beach.", "A person rides a brown horse along the shore."],
    2: ["Two dogs play with a red frisbee.", "A pair of dogs playing in the grass!"],
    "x": ["A plate of food on a wooden table.", "Food on a plate, on a table."],
}


def test_identical_hypotheses_score_one():
    hyps = {k: v[0] for k, v in REFS.items()}
    result = score(REFS, hyps)
    assert list(result) == list(METRICS)
    for n in range(1, 5):
        assert result[f"BLEU-{n}"] == pytest.approx(1.0, abs=1e-6)
    assert 0 < result["CIDEr-D"] <= 10


def test_score_equals_pycocoevalcap_on_the_same_tokens():
    hyps = {1: "a man rides a horse", 2: "dogs playing with a frisbee", "x": "a table with food (on it)"}
    gts = {k: [" ".join(tokenize(c)) for c in v] for k, v in REFS.items()}
    res = {k: [" ".join(tokenize(h))] for k, h in hyps.items()}
    assert tokenized(REFS, hyps) == (gts, res)
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    result = score(REFS, hyps)
    assert [result[f"BLEU-{n}"] for n in range(1, 5)] == pytest.approx(bleu, rel=1e-12)
    assert result["CIDEr-D"] == pytest.approx(cider, rel=1e-12)
    assert 0 < result["BLEU-4"] < result["BLEU-1"] < 1


def test_case_and_punctuation_do_not_count():
    refs = {1: ["a dog runs on the grass"], 2: ["a cat sleeps on a bed"]}
    plain = score(refs, {1: "a dog runs on the grass", 2: "a cat sleeps"})
    noisy = score(refs, {1: "A DOG runs, on the grass!", 2: "A cat... sleeps."})
    assert noisy == plain


def test_single_image_cider_is_zero():
    """The idf comes from the scored images' references: with one image every n-gram has idf 0."""
    assert score({1: ["a red circle"]}, {1: "a red circle"})["CIDEr-D"] == 0.0


def test_bad_input_raises():
    with pytest.raises(MMKitError, match="different image ids"):
        score(REFS, {1: "a man", 2: "two dogs"})
    with pytest.raises(MMKitError, match="different image ids"):
        score({1: ["a"]}, {1: "a", 2: "b"})
    with pytest.raises(MMKitError, match="nothing to score"):
        score({}, {})
    with pytest.raises(MMKitError, match="image 1: references must be a non-empty list"):
        score({1: []}, {1: "a"})
    with pytest.raises(MMKitError, match="image 1: references must be a non-empty list"):
        score({1: "a dog"}, {1: "a dog"})


def _guesses(n_scenes: int = 300) -> tuple[dict, dict[str, dict]]:
    """References of 2-3 object scenes (5 captions with the same wording rules as the data) and hypotheses:
    the right description, its words shuffled, colors bound to the wrong objects, the order reversed."""
    scenes = SyntheticCaptionScenes(n_scenes, seed=1, split="val")
    shuffle = random.Random(0)
    refs: dict = {}
    hyps: dict[str, dict] = {"right": {}, "bag of words": {}, "colors rotated": {}, "order reversed": {}}
    for i in range(n_scenes):
        spec = scenes.spec(i)
        objects, axis = spec.objects, spec.axis
        if len(objects) < 2:
            continue
        refs[i] = list(spec.captions)
        right = describe(objects, axis, random.Random(i))[0][0]
        words = right.rstrip(".").split()
        shuffle.shuffle(words)
        colors = [o.color for o in objects[1:] + objects[:1]]
        rotated = tuple(replace(o, color=c) for o, c in zip(objects, colors, strict=True))
        hyps["right"][i] = right
        hyps["bag of words"][i] = " ".join(words)
        hyps["colors rotated"][i] = describe(rotated, axis, random.Random(i))[0][0]
        hyps["order reversed"][i] = describe(objects[::-1], axis, random.Random(i))[0][0]
    return refs, hyps


def test_word_order_and_binding_matter_on_scenes():
    refs, hyps = _guesses()
    assert len(refs) > 200
    s = {name: score(refs, h) for name, h in hyps.items()}
    right, bag = s["right"], s["bag of words"]
    assert bag["BLEU-1"] == pytest.approx(right["BLEU-1"])  # the same words...
    assert bag["BLEU-4"] < 0.2 * right["BLEU-4"]  # ...in the wrong order (measured: 0.03 vs 0.71)
    assert bag["CIDEr-D"] < 0.7 * right["CIDEr-D"]  # (1.49 vs 2.92)
    for name, ratio in (("colors rotated", 0.85), ("order reversed", 0.98)):  # (0.72 and 0.95 on CIDEr-D)
        assert s[name]["BLEU-1"] == pytest.approx(right["BLEU-1"], abs=0.01)
        assert s[name]["BLEU-4"] < ratio * right["BLEU-4"], name
        assert s[name]["CIDEr-D"] < ratio * right["CIDEr-D"], name


# coco-caption's file of captions, one a line in this order -> the line of tokens Stanford's PTBTokenizer 3.4.1 (the
# jar pycocoevalcap ships; -preserveLines -lowerCase) writes for each, copied from the jar. A caption's last token
# can depend on the next line: whether it opens with a sentence starter ("The", "A", ...) or a number.
JAR_FILE = [
    (
        "A vase ca. 1900 on a table.",
        "a vase ca. 1900 on a table .",
    ),  # ca. (circa) keeps its period before a number
    ("A clock from ca.", "a clock from ca."),  # ... the next line's too
    ("1900 on a wall.", "1900 on a wall ."),
    (
        "A sign with the letter a.",
        "a sign with the letter a.",
    ),  # a letter keeps its period: no starter follows
    ("a dog with a letter b.", "a dog with a letter b ."),  # "The" follows: "b" then "."
    ("The letter C.", "the letter c ."),
    ("A man in the U.S.", "a man in the u.s. ."),
    (
        "Their dog at the Asst. desk in Ct. with Fig. 3 and no. 7.",
        "their dog at the asst. desk in ct. with fig. 3 and no. 7 .",
    ),
    ("A MFG. plant in the U.S.", "a mfg . plant in the u.s."),  # M[ft]g: the [ft] class is case-sensitive
    ("a sign that says plan b.", "a sign that says plan b."),  # the end of the file
]


def test_tokenize_lines_matches_the_jar_on_a_file_of_captions():
    captions = [c for c, _ in JAR_FILE]
    for i, (caption, line) in enumerate(JAR_FILE):
        following = captions[i + 1] if i + 1 < len(captions) else None
        assert ptb_tokens(caption, following) == line.split(" "), caption
    expected = [[t for t in line.split(" ") if t not in PUNCTUATIONS] for _, line in JAR_FILE]
    assert tokenize_lines(captions) == expected
    assert tokenize_lines([]) == []


TRICKY = {  # every caption's tokens depend on the next one in coco-caption's file of references or of hypotheses
    7: ["A sign with the letter a.", "The letter A on a sign."],
    8: ["A clock from ca.", "1900 clock on a wall."],
}
TRICKY_HYPS = {7: "a sign with the letter a.", 8: "a clock from ca."}


def test_tokenized_reads_references_and_hypotheses_as_coco_caption_files():
    gts, res = tokenized(TRICKY, TRICKY_HYPS)
    assert gts == {
        7: ["a sign with the letter a", "the letter a on a sign"],
        8: ["a clock from ca.", "1900 clock on a wall"],
    }
    assert res == {7: ["a sign with the letter a."], 8: ["a clock from ca"]}  # the jar's tokens


@pytest.mark.skipif(shutil.which("java") is None, reason="needs java for pycocoevalcap's Stanford tokenizer")
def test_tokenized_equals_pycocoevalcaps_java_tokenizer():
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    r = random.Random(3)
    words = ["a", "A", "the", "The", "dog", "U.S.", "ca.", "no.", "Jan.", "etc.", "b", "I", "1900", "Mr."]
    refs = {
        k: [" ".join(r.choices(words, k=r.randint(2, 6))) + r.choice([".", "", " ."]) for _ in range(3)]
        for k in range(60)
    }
    refs.update(TRICKY)
    hyps = {k: r.choice(v) for k, v in refs.items()} | TRICKY_HYPS
    java = PTBTokenizer()
    gts = java.tokenize({k: [{"caption": c} for c in v] for k, v in refs.items()})
    res = java.tokenize({k: [{"caption": hyps[k]}] for k in refs})
    assert tokenized(refs, hyps) == (gts, res)
