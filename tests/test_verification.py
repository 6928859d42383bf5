"""LFW verification metrics (10-fold accuracy, VAL@FAR, ROC), the pairs.txt format and the ROC plot."""

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import interpolate

from mmkit.data.formats.pairs import Pair, parse_pairs, read_pairs, sample_pairs, write_pairs
from mmkit.errors import MMKitError
from mmkit.metrics.verification import verification_metrics
from mmkit.report.roc import roc_plot


def _lfw_like(rng, n_folds=10, per_fold=300, gap=0.0):
    """Distances, labels and folds in pairs.txt order: per fold, per_fold matched then per_fold mismatched."""
    same = np.tile(np.r_[np.ones(per_fold, bool), np.zeros(per_fold, bool)], n_folds)
    d = np.where(same, rng.uniform(0, 1, same.size), rng.uniform(1 + gap, 2 + gap, same.size))
    return d, same


# ------------------------------------------------------------------------------------------ accuracy


def test_separable_distances_give_perfect_scores():
    d, same = _lfw_like(np.random.default_rng(0), gap=0.5)
    m = verification_metrics(d, same)
    assert m["accuracy"] == 1.0 and m["accuracy_std"] == 0.0 and m["fold_accuracy"] == [1.0] * 10
    assert m["auc"] == 1.0 and m["eer"] == 0.0 and m["best_accuracy"] == 1.0
    assert d[same].max() < m["threshold"] < d[~same].min()
    # the FAR 1e-3 threshold lies among the 2,700 training mismatched distances (between the 2nd and 3rd
    # smallest), past every matched one: all matched pairs pass, and about 1e-3 of mismatched ones
    assert m["val"] == 1.0 and 0 <= m["far"] < 3e-3
    assert m["n_pairs"] == 6000 and m["n_same"] == 3000 and m["n_folds"] == 10


def test_random_distances_give_chance():
    rng = np.random.default_rng(1)
    same = np.tile(np.r_[np.ones(300, bool), np.zeros(300, bool)], 10)
    m = verification_metrics(rng.random(6000), same)
    assert 0.45 < m["accuracy"] < 0.56
    assert abs(m["auc"] - 0.5) < 0.04 and abs(m["eer"] - 0.5) < 0.05
    assert m["val"] < 0.02  # at FAR 1e-3, about 1e-3 of the matched pairs get through


def test_threshold_comes_from_the_other_folds():
    # fold 0 separates at (2, 3), fold 1 at (6, 7): each fold alone is perfect, but a threshold chosen on the
    # other fold accepts everything (fold 0) or nothing (fold 1)
    d = np.array([1, 2, 3, 4, 5, 6, 7, 8], float)
    same = np.array([1, 1, 0, 0, 1, 1, 0, 0], bool)
    folds = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    m = verification_metrics(d, same, folds=folds)
    assert m["fold_accuracy"] == [0.5, 0.5] and m["accuracy"] == 0.5
    assert m["fold_thresholds"] == pytest.approx([6.5, 2.5], abs=0.01)  # the middle of the other fold's gap
    assert m["best_accuracy"] == 0.75  # one threshold for all 8 pairs
    # the same data as one fold each for evaluation against itself would be perfect
    assert verification_metrics(d[:4].tolist() * 2, same[:4].tolist() * 2, folds=folds)["accuracy"] == 1.0


def test_each_fold_threshold_maximises_accuracy_on_the_other_folds():
    rng = np.random.default_rng(2)
    same = np.tile(np.r_[np.ones(40, bool), np.zeros(40, bool)], 5)
    d = np.where(same, rng.normal(1.0, 0.4, same.size), rng.normal(1.8, 0.4, same.size))
    folds = np.repeat(np.arange(5), 80)
    grid = np.linspace(d.min() - 0.01, d.max() + 0.01, 501)
    m = verification_metrics(d, same, folds=folds, thresholds=grid)
    for f, t in enumerate(m["fold_thresholds"]):
        train = folds != f
        brute = ((d[train][:, None] < grid[None]) == same[train][:, None]).mean(0)  # accuracy at each t
        assert ((d[train] < t) == same[train]).mean() == brute.max()
        assert m["fold_accuracy"][f] == ((d[folds == f] < t) == same[folds == f]).mean()
    assert m["accuracy"] == pytest.approx(np.mean(m["fold_accuracy"]))
    assert 0.8 < m["accuracy"] < 0.95 and 0.85 < m["auc"] < 0.98


def test_tensors_and_default_folds():
    d, same = _lfw_like(np.random.default_rng(3), n_folds=10, per_fold=20, gap=-0.3)
    as_numpy = verification_metrics(d, same)
    as_torch = verification_metrics(torch.from_numpy(d).float().double(), torch.from_numpy(same))
    assert as_torch["accuracy"] == as_numpy["accuracy"] and as_torch["val"] == as_numpy["val"]
    explicit = verification_metrics(d, same, folds=np.repeat(np.arange(10), 40))
    assert explicit["fold_accuracy"] == as_numpy["fold_accuracy"]
    with pytest.raises(ValueError, match="one label per distance"):
        verification_metrics(d[:-1], same)
    with pytest.raises(ValueError, match="both matched and mismatched"):
        verification_metrics(d, same, folds=np.r_[np.zeros(20, int), np.ones(400 - 20, int)])


# ------------------------------------------------------------------------------------------ VAL@FAR


def test_val_at_far_on_a_hand_computed_example():
    d = np.array([0.5, 1.5, 2.5, 3.5, 1.0, 2.0, 3.0, 4.0, 0.2, 0.4, 2.2, 2.4, 1.2, 3.2, 3.4, 3.6])
    same = np.tile(np.r_[np.ones(4, bool), np.zeros(4, bool)], 2)
    folds = np.repeat([0, 1], 8)
    grid = np.array([0.0, 1, 2, 3, 4, 5])
    m = verification_metrics(d, same, folds=folds, far_target=0.375, thresholds=grid)
    # fold 0 held out: FAR on fold 1 over the grid is 0 0 .25 .25 1 1 -> t = 3 + (.375 - .25) / .75 = 3.1667,
    #   which accepts 3 of 4 matched and 3 of 4 mismatched pairs of fold 0
    # fold 1 held out: FAR on fold 0 is 0 0 .25 .5 .75 1 -> t = 2.5: VAL 4/4, FAR 1/4 on fold 1
    assert m["val"] == pytest.approx((0.75 + 1.0) / 2) and m["val_std"] == pytest.approx(0.125)
    assert m["far"] == pytest.approx((0.75 + 0.25) / 2)
    # a target FAR the grid never reaches: threshold 0, nothing accepted (as facenet)
    never = verification_metrics(d, same, folds=folds, far_target=0.5, thresholds=[0.0, 0.5, 1.0])
    assert never["val"] == 0.0 and never["far"] == 0.0


def test_val_at_far_on_an_exact_hit_takes_the_largest_threshold_and_accepts_only_smaller_distances():
    d = np.array([0.5, 1.5, 2.5, 3.5, 1.0, 2.0, 3.0, 4.0, 0.2, 0.4, 2.2, 2.4, 1.2, 3.2, 3.4, 3.6])
    same = np.tile(np.r_[np.ones(4, bool), np.zeros(4, bool)], 2)
    folds = np.repeat([0, 1], 8)
    m = verification_metrics(d, same, folds=folds, far_target=0.25, thresholds=np.array([0.0, 1, 2, 3, 4, 5]))
    # fold 0 held out: FAR on fold 1 is 0 0 .25 .25 1 1, exactly the target at 2 and 3 -> t = 3, under which
    #   fold 0 has 3 of 4 matched and 2 of 4 mismatched pairs (its mismatched 3.0 is not under 3)
    # fold 1 held out: FAR on fold 0 is 0 0 .25 .5 .75 1 -> t = 2: VAL 2/4, FAR 1/4 on fold 1
    assert m["val"] == pytest.approx((0.75 + 0.5) / 2) and m["far"] == pytest.approx((0.5 + 0.25) / 2)


def _facenet_val(d, same, folds, grid, far_target):
    """facenet's calculate_val written plainly, with scipy's linear interp1d (its slinear needs unique x)."""
    val, far = [], []
    for f in np.unique(folds):
        train, test = folds != f, folds == f
        far_train = np.array([(d[train][~same[train]] < t).mean() for t in grid])
        t = (
            interpolate.interp1d(far_train, grid, kind="linear")(far_target)
            if far_train.max() >= far_target
            else 0
        )
        accept = d[test] < t
        val.append(accept[same[test]].mean())
        far.append(accept[~same[test]].mean())
    return np.mean(val), np.std(val), np.mean(far)


def test_val_at_far_matches_the_facenet_recipe():
    rng = np.random.default_rng(4)
    same = np.tile(np.r_[np.ones(100, bool), np.zeros(100, bool)], 10)
    d = np.where(same, rng.normal(1.0, 0.3, same.size), rng.normal(2.0, 0.3, same.size))
    folds = np.repeat(np.arange(10), 200)
    grid = np.arange(0, 4, 0.001)  # facenet's VAL grid
    for target in (1e-3, 0.0123):  # 0.9 and 11.07 false accepts out of 900: never hit exactly
        m = verification_metrics(d, same, folds=folds, far_target=target, thresholds=grid)
        assert (m["val"], m["val_std"], m["far"]) == pytest.approx(_facenet_val(d, same, folds, grid, target))
    assert 0.2 < m["val"] < 1


# ------------------------------------------------------------------------------------------ ROC plot


def test_roc_plot_writes_a_png(tmp_path):
    d, same = _lfw_like(np.random.default_rng(5), per_fold=50, gap=-0.4)
    m = verification_metrics(d, same)
    assert m["fpr"][0] == 0 and m["tpr"][-1] == 1 and 0.5 < m["auc"] < 1
    for log_far in (False, True):
        out = roc_plot(m["fpr"], m["tpr"], tmp_path / f"roc_{log_far}.png", "ROC", log_far=log_far,
                       mark_far=1e-2)  # fmt: skip
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(out) as img:
            assert img.width > 300 and img.height > 300
            assert len(np.unique(np.asarray(img.convert("L")))) > 10  # something is drawn
    with pytest.raises(ValueError):
        roc_plot([0.0, 1.0], [0.0], tmp_path / "bad.png", "bad")


# ------------------------------------------------------------------------------------------ pairs.txt

LFW_SAMPLE = """2\t2
Abel_Pacheco\t1\t4
Akhmed_Zakayev\t1\t3
Abdel_Madi_Shabneh\t1\tDean_Barker\t1
Abel_Pacheco\t2\tAkhmed_Zakayev\t2
Akhmed_Zakayev\t2\t3
Dean_Barker\t1\t2
Abdel_Madi_Shabneh\t1\tAbel_Pacheco\t3
Dean_Barker 2 Akhmed_Zakayev 1
"""


@pytest.fixture
def lfw_root(tmp_path):
    root = tmp_path / "lfw"
    for name, count, ext in [
        ("Abel_Pacheco", 4, ".jpg"),
        ("Akhmed_Zakayev", 3, ".jpg"),
        ("Abdel_Madi_Shabneh", 1, ".jpg"),
        ("Dean_Barker", 2, ".png"),
    ]:
        (root / name).mkdir(parents=True)
        for i in range(1, count + 1):
            (root / name / f"{name}_{i:04d}{ext}").write_bytes(b"")
    return root


def test_read_lfw_pairs(tmp_path, lfw_root):
    (tmp_path / "pairs.txt").write_text(LFW_SAMPLE)
    pairs = read_pairs(tmp_path / "pairs.txt", lfw_root)
    assert [p.same for p in pairs] == [True, True, False, False] * 2
    assert [p.fold for p in pairs] == [0] * 4 + [1] * 4
    assert pairs[0].path1 == lfw_root / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg"
    assert pairs[0].path2 == lfw_root / "Abel_Pacheco" / "Abel_Pacheco_0004.jpg"
    assert pairs[2] == Pair(
        lfw_root / "Abdel_Madi_Shabneh/Abdel_Madi_Shabneh_0001.jpg",
        lfw_root / "Dean_Barker/Dean_Barker_0001.png",  # .png found too
        False, 0, "Abdel_Madi_Shabneh", 1, "Dean_Barker", 1,
    )  # fmt: skip
    assert pairs[-1].name1 == "Dean_Barker" and pairs[-1].index2 == 1  # spaces separate fields as well
    # a single-number header (pairsDevTest.txt style): one fold
    lines = LFW_SAMPLE.splitlines()
    (tmp_path / "dev.txt").write_text("\n".join(["2"] + lines[1:5]) + "\n\n")
    assert [p.fold for p in read_pairs(tmp_path / "dev.txt", lfw_root)] == [0] * 4


@pytest.mark.parametrize(
    "line, replacement, problem",
    [
        (3, "Akhmed_Zakayev\t1", ":3: expected a matched pair"),
        (4, "Abdel_Madi_Shabneh\t1\t2", ":4: expected a mismatched pair"),
        (2, "Abel_Pacheco\tone\t4", ":2: image number 'one'"),
        (2, "Abel_Pacheco\t0\t4", ":2: image number '0'"),
        (5, "Abel_Pacheco\t2\tAbel_Pacheco\t3", ":5: mismatched pair names 'Abel_Pacheco' twice"),
        (6, "Akhmed_Zakayev\t2\t9", ":6: image .*Akhmed_Zakayev_0009.* not found"),
        (1, "2 two", ":1: expected a header"),
    ],
)
def test_malformed_pairs_name_the_line(tmp_path, lfw_root, line, replacement, problem):
    lines = LFW_SAMPLE.splitlines()
    lines[line - 1] = replacement
    path = tmp_path / "pairs.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(MMKitError, match=f"pairs.txt{problem}"):
        read_pairs(path, lfw_root)


def test_pairs_file_level_errors(tmp_path, lfw_root):
    with pytest.raises(MMKitError, match="not found"):
        read_pairs(tmp_path / "missing.txt", lfw_root)
    (tmp_path / "short.txt").write_text("\n".join(LFW_SAMPLE.splitlines()[:-1]))
    with pytest.raises(MMKitError, match="short.txt: header says 2 folds x 2 .* found 7 lines"):
        read_pairs(tmp_path / "short.txt", lfw_root)
    (tmp_path / "pairs.txt").write_text(LFW_SAMPLE)
    with pytest.raises(MMKitError, match="image folder"):
        read_pairs(tmp_path / "pairs.txt", tmp_path / "nowhere")
    unchecked = read_pairs(tmp_path / "pairs.txt", tmp_path / "nowhere", check_files=False)
    assert unchecked[0].path1 == tmp_path / "nowhere/Abel_Pacheco/Abel_Pacheco_0001.jpg"


def test_write_pairs_round_trip(tmp_path, lfw_root):
    (tmp_path / "pairs.txt").write_text(LFW_SAMPLE)
    pairs = read_pairs(tmp_path / "pairs.txt", lfw_root)
    write_pairs(tmp_path / "copy.txt", pairs, folds=2, per_fold=2)
    assert parse_pairs(tmp_path / "copy.txt")[2] == parse_pairs(tmp_path / "pairs.txt")[2]
    assert (tmp_path / "copy.txt").read_text().splitlines()[:2] == ["2\t2", "Abel_Pacheco\t1\t4"]
    with pytest.raises(ValueError, match="mismatched block"):
        write_pairs(tmp_path / "bad.txt", [("a", 1, "a", 2), ("a", 1, "a", 3)], folds=1, per_fold=1)
    with pytest.raises(ValueError, match="need folds"):
        write_pairs(tmp_path / "bad.txt", pairs[:3], folds=2, per_fold=2)


def test_sample_pairs_with_uneven_identities():
    counts = {"ann": 5, "bob": 1, "cy": 2, "dee": 3}
    rows, per_fold, disjoint = sample_pairs(counts, folds=3, per_fold=100, rng=0)
    # 6 identities would be needed for disjoint folds: every fold uses all four; matched pairs: 10 + 0 + 1 + 3
    assert not disjoint and per_fold == 14 and len(rows) == 3 * 2 * 14
    for fold in range(3):
        block = rows[fold * 28 : (fold + 1) * 28]
        matched, mismatched = block[:14], block[14:]
        assert all(a == b for a, _, b, _ in matched) and all(a != b for a, _, b, _ in mismatched)
        assert len(set(matched)) == 14 and len(set(mismatched)) == 14
        assert all(1 <= i <= counts[a] and 1 <= j <= counts[b] for a, i, b, j in block)
        assert all(i < j for _, i, _, j in matched) and "bob" not in {a for a, *_ in matched}
    assert sample_pairs(counts, folds=2, per_fold=5, rng=7) == sample_pairs(
        counts, folds=2, per_fold=5, rng=7
    )
    rows, per_fold, disjoint = sample_pairs(counts, folds=2, per_fold=100, rng=0)
    groups = [
        {n for a, _, b, _ in rows[f * 2 * per_fold : (f + 1) * 2 * per_fold] for n in (a, b)} for f in (0, 1)
    ]
    assert disjoint and not groups[0] & groups[1] and all(len(g) == 2 for g in groups)
    # as many pairs as the weaker fold gives: matched pairs of its two identities, or their image pairs
    sizes = [[counts[n] for n in g] for g in groups]
    assert per_fold == min(min(sum(m * (m - 1) // 2 for m in s), s[0] * s[1]) for s in sizes)
    # disjoint folds would leave one fold without a matched pair (only d has more than one image)
    rows, per_fold, disjoint = sample_pairs({"a": 1, "b": 1, "c": 1, "d": 5}, folds=2, per_fold=100)
    assert not disjoint and per_fold == 10 and len(rows) == 40
    with pytest.raises(MMKitError, match="no matched and mismatched pair"):
        sample_pairs({"a": 1, "b": 1}, folds=1, per_fold=5)
