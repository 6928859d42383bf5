"""Generation metrics: FID, KID, IS, PSNR/SSIM (RGB and the SR papers' Y channel) against references, the naive
Gaussian baseline, feature networks."""

from dataclasses import asdict

import numpy as np
import pytest
import scipy.linalg
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from sklearn.metrics.pairwise import polynomial_kernel

from mmkit.engine.checkpoint import FORMAT, VERSION, save_checkpoint
from mmkit.errors import MMKitError
from mmkit.metrics.generation import (
    INCEPTION_NAME,
    Fidelity,
    feature_stats,
    fid_from_features,
    frechet_distance,
    inception_features,
    inception_score,
    kid,
    naive_gaussian_samples,
    psnr,
    rgb_to_y,
    ssim,
)


def _pytorch_fid_reference(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's formula: scipy sqrtm of the product, with the eps offset when it is singular."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = covmean.real
    diff = mu1 - mu2
    return diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def test_frechet_distance_matches_pytorch_fid_and_torchmetrics_formulas():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 32)) @ rng.normal(size=(32, 32))
    b = rng.normal(size=(300, 32)) * 1.5 + 0.3
    stats = (*feature_stats(a), *feature_stats(b))
    ours = frechet_distance(*stats)
    assert ours == pytest.approx(_pytorch_fid_reference(*stats), rel=1e-4)
    eig = np.linalg.eigvals(stats[1] @ stats[3]).astype(complex)  # torchmetrics' route
    tm = (
        np.sum((stats[0] - stats[2]) ** 2)
        + np.trace(stats[1])
        + np.trace(stats[3])
        - 2 * np.sqrt(eig).real.sum()
    )
    assert ours == pytest.approx(tm, rel=1e-4)


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(1)
    v1, v2 = rng.uniform(0.1, 3, 20), rng.uniform(0.1, 3, 20)
    mu1, mu2 = rng.normal(size=20), rng.normal(size=20)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-10)
    assert frechet_distance(mu1, np.diag(v1), mu1, np.diag(v1)) == pytest.approx(0, abs=1e-9)


def test_fid_is_zero_for_a_set_with_itself_and_grows_with_a_mean_shift():
    feats = torch.randn(500, 16, generator=torch.Generator().manual_seed(0)) * 2
    assert abs(fid_from_features(feats, feats)) < 1e-8
    shifted = [fid_from_features(feats, feats + d) for d in (0.1, 0.5, 1.0)]
    # a pure shift leaves the covariance unchanged: FID = |d|^2 * D
    assert shifted == pytest.approx([16 * d * d for d in (0.1, 0.5, 1.0)], rel=1e-6)


def test_fid_is_finite_when_covariances_are_singular():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(20, 64)), rng.normal(size=(25, 64)) + 0.2
    ours = fid_from_features(a, b)
    assert ours == pytest.approx(_pytorch_fid_reference(*feature_stats(a), *feature_stats(b)), rel=1e-4)


def test_kid_equals_the_unbiased_mmd_and_separates_distributions():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 8, generator=g), torch.randn(200, 8, generator=g) + 0.5
    # subsets as large as the sets: every subset is the whole set, so the value is exact
    mean, std = kid(x, y, subsets=3, subset_size=200)
    k_xx, k_yy = (
        polynomial_kernel(x.numpy(), degree=3, coef0=1),
        polynomial_kernel(y.numpy(), degree=3, coef0=1),
    )
    k_xy = polynomial_kernel(x.numpy(), y.numpy(), degree=3, coef0=1)
    m = len(x)
    expected = (
        (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
        + (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        - 2 * k_xy.mean()
    )
    assert mean == pytest.approx(expected, rel=1e-9) and std == pytest.approx(0, abs=1e-12)
    same, same_std = kid(x, torch.randn(200, 8, generator=g), subsets=20, subset_size=100)
    shifted, _ = kid(x, y, subsets=20, subset_size=100)
    assert abs(same) < 0.05 and shifted > 0.3 and shifted > 10 * abs(same)
    assert same_std > 0  # subsets of 100 out of 200 differ


def test_inception_score_extremes():
    labels = torch.arange(1000) % 10
    one_hot = torch.nn.functional.one_hot(labels, 10).double()
    assert inception_score(one_hot, splits=10) == pytest.approx((10.0, 0.0))
    constant = torch.zeros(1000, 10, dtype=torch.float64)
    constant[:, 3] = 1
    assert inception_score(constant, splits=10) == pytest.approx((1.0, 0.0))
    assert inception_score(torch.full((100, 10), 0.1), splits=5)[0] == pytest.approx(1.0)
    soft = torch.softmax(torch.randn(1000, 10, generator=torch.Generator().manual_seed(0)) * 3, dim=1)
    assert 1.0 < inception_score(soft)[0] < 10.0


def _unit_batch(img: np.ndarray) -> torch.Tensor:
    """A uint8 photo [H, W(, 3)] as a [1, C, H, W] float64 batch in [0, 1]."""
    x = torch.from_numpy(img).double() / 255
    return (x.permute(2, 0, 1) if x.ndim == 3 else x[None])[None]


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).numpy()


def _degraded(clean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian noise (σ 0.075 of the range, clipped) and a 3×3 box blur of [1, C, H, W] images in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    noisy = (clean + 0.075 * torch.randn(clean.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    blurred = torch.nn.functional.avg_pool2d(clean, 3, stride=1, padding=1, count_include_pad=False)
    return noisy, blurred


# The settings under which skimage's SSIM is ours (and torchmetrics' default): the 11-tap Gaussian window of Wang et
# al. with sigma 1.5 and population (not sample) covariances, on [0, 1] images with a data range of 1.
SKIMAGE_SSIM = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 1.0}


@pytest.mark.parametrize("name", ["astronaut", "coffee", "camera"])
def test_psnr_ssim_match_skimage_on_unit_range_photos(photos, name):
    """PSNR and SSIM on [0, 1] equal skimage.metrics' peak_signal_noise_ratio(data_range=1) and
    structural_similarity(channel_axis=2, **SKIMAGE_SSIM) on noisy and blurred real photos, to float64 round-off.
    skimage's default window (7×7 uniform, sample covariances) and the old [-1, 1] input (data range 2) do not."""
    clean = _unit_batch(photos[name])
    for pred in _degraded(clean):
        p, t = _hwc(pred), _hwc(clean)
        ref_ssim = structural_similarity(p, t, channel_axis=2, **SKIMAGE_SSIM)
        assert ssim(pred, clean).item() == pytest.approx(ref_ssim, abs=1e-9)
        assert psnr(pred, clean).item() == pytest.approx(
            peak_signal_noise_ratio(t, p, data_range=1.0), abs=1e-9
        )
        assert abs(structural_similarity(p, t, channel_axis=2, data_range=1.0) - ref_ssim) > 1e-3
        # SSIM is not shift-invariant: the same pictures in [-1, 1] (data range 2) score lower, PSNR does not move
        signed = ssim(2 * pred - 1, 2 * clean - 1, data_range=2.0).item()
        assert ref_ssim - signed > 1e-3
        assert psnr(2 * pred - 1, 2 * clean - 1, data_range=2.0).item() == pytest.approx(
            psnr(pred, clean).item()
        )
    noisy, blurred = _degraded(clean)
    batch = torch.cat([noisy, blurred, clean])
    scores = ssim(batch, clean.expand_as(batch))
    assert scores.shape == (3,) and scores[2].item() == pytest.approx(1.0) and scores[0] < scores[1] < 1


def _matlab_y(img: np.ndarray) -> np.ndarray:
    """The luma of a uint8 RGB image on the 0..255 scale, as MATLAB's rgb2ycbcr computes it (float, not rounded)."""
    rgb = img.astype(np.float64) / 255
    return 16 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "rocket"])
def test_y_channel_with_a_cropped_border_matches_the_super_resolution_papers(photos, name):
    """Fidelity(y_channel=True, crop_border=4) on uint8 images: PSNR and SSIM of the BT.601 luma (range 255), 4
    pixels cut from each side, computed here directly with numpy (and skimage's SSIM on the 2-D luma)."""
    clean = photos[name]
    fidelity = Fidelity(y_channel=True, crop_border=4)
    assert fidelity.name == "y_crop4"
    for degraded in _degraded(_unit_batch(clean)):
        pred = (_hwc(degraded) * 255).round().astype(np.uint8)
        y_pred, y_true = (_matlab_y(x)[4:-4, 4:-4] for x in (pred, clean))
        mse = np.mean((y_pred - y_true) ** 2)
        ref_ssim = structural_similarity(y_pred, y_true, **{**SKIMAGE_SSIM, "data_range": 255.0})
        batches = [torch.from_numpy(x).permute(2, 0, 1)[None] for x in (pred, clean)]
        scores = fidelity(*batches)
        assert set(scores) == {"psnr_y_crop4", "ssim_y_crop4"}
        assert scores["psnr_y_crop4"].item() == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-9)
        assert scores["ssim_y_crop4"].item() == pytest.approx(ref_ssim, abs=1e-9)
        rgb = Fidelity()(*batches)
        assert set(rgb) == {"psnr_rgb", "ssim_rgb"}
        assert rgb["psnr_rgb"].item() != pytest.approx(scores["psnr_y_crop4"].item(), abs=0.01)


def test_fidelity_conventions_on_gray_and_small_images():
    gray = torch.rand(2, 1, 20, 20, generator=torch.Generator().manual_seed(0))
    assert torch.equal(rgb_to_y(gray), gray)  # a one-channel image is its own luma
    white = torch.ones(1, 3, 4, 4)
    assert rgb_to_y(white).flatten().tolist() == pytest.approx([235 / 255] * 16)
    assert Fidelity(crop_border=2).name == "rgb_crop2" and Fidelity(y_channel=True).name == "y"
    small = Fidelity(crop_border=5)(gray, gray.flip(-1))  # 10x10 left: SSIM's 11x11 window does not fit
    assert small["ssim_rgb_crop5"].isnan().all() and torch.isfinite(small["psnr_rgb_crop5"]).all()
    with pytest.raises(MMKitError, match="crop-border 10"):
        Fidelity(crop_border=10)(gray, gray)


def test_naive_gaussian_samples_match_the_data_mean_and_covariance():
    g = torch.Generator().manual_seed(0)
    mixing = torch.randn(64, 64, generator=g) * 0.03
    data = (torch.randn(4000, 64, generator=g) @ mixing + torch.linspace(-0.5, 0.5, 64)).clamp(-1, 1)
    images = data.view(4000, 1, 8, 8)
    samples = naive_gaussian_samples(images, 4000, seed=1)
    assert samples.shape == (4000, 1, 8, 8) and samples.dtype == torch.float32
    assert samples.min() >= -1 and samples.max() <= 1
    mu_d, cov_d = feature_stats(data)
    mu_s, cov_s = feature_stats(samples.flatten(1))
    assert np.abs(mu_s - mu_d).max() < 0.02  # sampling error: std 0.24 / sqrt(4000)
    assert np.abs(cov_s - cov_d).max() < 0.1 * np.abs(cov_d).max()
    assert torch.equal(samples, naive_gaussian_samples(images, 4000, seed=1))
    assert not torch.equal(samples, naive_gaussian_samples(images, 4000, seed=2))


def test_naive_gaussian_samples_with_fewer_images_than_pixels_keep_their_covariance():
    g = torch.Generator().manual_seed(0)
    # 40 images of 192 pixels: a rank-39 covariance, small enough values that no sample is clipped
    base = torch.randn(40, 3, 8, 8, generator=g) * 0.05
    samples = naive_gaussian_samples(base, 20000, seed=1)
    assert samples.shape == (20000, 3, 8, 8) and samples.dtype == torch.float32
    mu_d, cov_d = feature_stats(base.flatten(1))
    mu_s, cov_s = feature_stats(samples.flatten(1))
    assert np.abs(mu_s - mu_d).max() < 0.003 and np.abs(cov_s - cov_d).max() < 0.1 * np.abs(cov_d).max()
    # the samples lie in the images' span around their mean, as the Gaussian of that covariance does
    centred = (base.flatten(1) - base.flatten(1).mean(0)).double()
    q = torch.linalg.qr(centred.T).Q
    off = samples.flatten(1).double() - base.flatten(1).mean(0).double()
    assert (off - off @ q @ q.T).abs().max() < 1e-4


@pytest.fixture(scope="module")
def tiny_classifier_checkpoint(tmp_path_factory):
    from mmkit.models import get_model
    from mmkit.tasks.classify import ClassifierMeta

    torch.manual_seed(0)
    net = get_model("smallcnn", 10, in_chans=1, width=0.5)
    meta = ClassifierMeta("smallcnn", 10, 1, 28, [0.3], [0.35], [str(i) for i in range(10)], 28, "mnist5k")
    meta.model_kwargs = {"width": 0.5}
    path = tmp_path_factory.mktemp("clf") / "best.pt"
    state = {
        "format": FORMAT,
        "version": VERSION,
        "task": "classify",
        "model": net.state_dict(),
        "meta": asdict(meta),
    }
    save_checkpoint(state, path)
    return path


def test_classifier_features_are_the_pre_logits_of_a_saved_classifier(tiny_classifier_checkpoint):
    from mmkit.metrics.generation import classifier_features
    from mmkit.tasks.classify import load_classifier

    net, meta = load_classifier(tiny_classifier_checkpoint)
    extract = classifier_features(net, meta, batch_size=7)
    assert "smallcnn" in extract.name and "mnist5k" in extract.name
    images = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    feats, probs = extract(images)
    assert feats.shape == (20, 32) and probs.shape == (20, 10)
    with torch.no_grad():
        x = ((images + 1) * 127.5).round() / 255
        x = (x - 0.3) / 0.35
        expected_feats = net.forward_features(x)
        expected_probs = net(x).softmax(1)
    torch.testing.assert_close(feats, expected_feats, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(probs, expected_probs, rtol=1e-4, atol=1e-6)
    # other sizes and channels are converted to what the classifier takes
    feats_rgb, _ = extract(torch.rand(3, 3, 64, 64) * 2 - 1)
    assert feats_rgb.shape == (3, 32) and torch.isfinite(feats_rgb).all()


def test_inception_features_only_from_offline_weights(tmp_path, monkeypatch):
    from torchvision import models as tvm

    from mmkit.models import get_weights

    monkeypatch.setenv("MMKIT_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(MMKitError, match="not available offline"):
        inception_features()
    # a stand-in file with the published name and layout (random values) is found and used
    filename = get_weights("inception_v3", "imagenet").source.rsplit("/", 1)[-1]
    (tmp_path / "weights").mkdir()
    torch.manual_seed(0)
    stand_in = tvm.inception_v3(weights=None, aux_logits=True, init_weights=False)
    torch.save(stand_in.state_dict(), tmp_path / "weights" / filename)
    extract = inception_features()
    assert extract.name == INCEPTION_NAME
    feats, probs = extract(torch.rand(2, 1, 28, 28) * 2 - 1)
    assert feats.shape == (2, 2048) and probs.shape == (2, 1000)
    assert torch.allclose(probs.sum(1), torch.ones(2))


def test_the_baseline_of_a_one_channel_input_is_that_input_in_every_channel():
    from mmkit.tasks.generate.common import baseline

    gray, colour = torch.rand(2, 1, 8, 8) * 2 - 1, torch.rand(2, 3, 8, 8) * 2 - 1
    name, ref = baseline(gray, colour)
    assert name == "the input itself" and ref.shape == colour.shape
    assert all(torch.equal(ref[:, c], gray[:, 0]) for c in range(3))
    name, ref = baseline(colour[:, :, :4, :4], colour)  # a smaller image of the target: bicubic
    assert name == "bicubic upscaling" and ref.shape == colour.shape
    assert baseline(colour, colour[:, :, :4, :4]) is None  # nothing a model must beat
