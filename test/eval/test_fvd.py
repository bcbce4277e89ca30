import numpy as np
import pytest

from mask2iv_ros.eval.fvd import (PixelStatsVideoFeatures, TorchScriptI3D, frechet_distance, fvd,
                                  fvd_from_features, gaussian_statistics)


def test_identical_gaussians_have_zero_distance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5))
    sigma = a @ a.T + np.eye(5)
    mu = rng.normal(size=5)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_one_dimensional_closed_form():
    # d = (m1 - m2)^2 + (s1 - s2)^2 for 1-D Gaussians with standard deviations s1, s2.
    value = frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]]))
    assert value == pytest.approx(3.0 ** 2 + (2.0 - 3.0) ** 2)


def test_diagonal_closed_form():
    var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected)


def test_statistics_from_samples_and_shape_errors():
    rng = np.random.default_rng(1)
    features = rng.normal(loc=3.0, size=(4000, 2))
    mu, sigma = gaussian_statistics(features)
    assert mu == pytest.approx([3.0, 3.0], abs=0.1)
    assert sigma == pytest.approx(np.eye(2), abs=0.1)
    shifted = fvd_from_features(features, features + np.array([2.0, 0.0]))
    assert shifted == pytest.approx(4.0, abs=1e-6)
    with pytest.raises(ValueError, match="features"):
        gaussian_statistics(features[:1])
    with pytest.raises(ValueError, match="mu2"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_pixelstats_fvd_zero_for_same_set_positive_for_different():
    rng = np.random.default_rng(2)
    real = [rng.integers(0, 255, (4, 16, 16, 3), dtype=np.uint8) for _ in range(6)]
    dark = [(v // 4).astype(np.uint8) for v in real]
    extractor = PixelStatsVideoFeatures(grid=2)
    assert extractor(real).shape == (6, 3 * 3 * 4)
    assert fvd(real, real, extractor) == pytest.approx(0.0, abs=1e-6)
    assert fvd(real, dark, extractor) > 0.1


def test_i3d_path_must_exist(tmp_path):
    with pytest.raises(ValueError, match="i3d_path"):
        TorchScriptI3D(tmp_path / "nope.pt")


def test_torchscript_extractor_runs_a_local_module(tmp_path):
    import torch

    class Tiny(torch.nn.Module):
        def forward(self, x):  # [N, 3, T, S, S] -> [N, 3]
            return x.mean(dim=(2, 3, 4))

    torch.jit.script(Tiny()).save(str(tmp_path / "tiny.pt"))
    extractor = TorchScriptI3D(tmp_path / "tiny.pt", size=8)
    videos = [np.full((2, 8, 8, 3), 255, np.uint8), np.zeros((2, 8, 8, 3), np.uint8)]
    assert extractor(videos) == pytest.approx(np.array([[1.0] * 3, [-1.0] * 3]))


def test_matches_scipy_sqrtm_on_full_covariances():
    from scipy import linalg

    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    reference = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * np.real(linalg.sqrtm(s1 @ s2)))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-8)


def test_singular_covariances_from_two_samples():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(2, 48)), rng.normal(size=(2, 48)) + 1.0
    value = fvd_from_features(x, y)
    assert np.isfinite(value) and value > 0
    assert fvd_from_features(x, x) == pytest.approx(0.0, abs=1e-9)
