import math

import numpy as np
import pytest
import torch

from mask2iv_ros.eval.lpips import LPIPS, lpips_video
from mask2iv_ros.eval.metrics_video import gaussian_window, psnr, psnr_per_frame, ssim


def _video(seed=0, t=3, h=32, w=32):
    return np.random.default_rng(seed).integers(20, 236, size=(t, h, w, 3), dtype=np.uint8)


def test_psnr_identical_is_inf_and_constant_offset_is_known():
    video = _video()
    assert psnr(video, video) == math.inf
    shifted = video + np.uint8(10)  # values <= 245: no wrap-around
    expected = 10 * math.log10(255 ** 2 / 100.0)  # MSE = 10^2
    assert psnr(shifted, video) == pytest.approx(expected, abs=1e-9)
    assert expected == pytest.approx(28.1308, abs=1e-4)


def test_psnr_is_per_frame_mean():
    video = _video()
    other = video.copy()
    other[0] = other[0] + np.uint8(10)
    other[1] = other[1] + np.uint8(5)
    other[2] = other[2] + np.uint8(5)
    per_frame = psnr_per_frame(other, video)
    assert per_frame[1] == pytest.approx(10 * math.log10(255 ** 2 / 25.0))
    assert psnr(other, video) == pytest.approx(float(per_frame.mean()))


def test_ssim_identical_is_one_and_constant_images_match_closed_form():
    video = _video()
    assert ssim(video, video) == pytest.approx(1.0, abs=1e-12)
    # Constant frames have zero variance, so SSIM = (2ab + C1) / (a^2 + b^2 + C1) exactly.
    a, b = 100 / 255, 150 / 255
    c1 = (0.01) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    first = np.full((2, 16, 16, 3), 100, np.uint8)
    second = np.full((2, 16, 16, 3), 150, np.uint8)
    assert ssim(first, second) == pytest.approx(expected, abs=1e-12)


def test_ssim_drops_with_noise_and_is_symmetric():
    ramp = np.linspace(60, 190, 32).astype(np.uint8)
    video = np.broadcast_to(ramp[None, None, :, None], (2, 32, 32, 3)).copy()
    noisy = np.clip(video.astype(int) + np.random.default_rng(1).integers(-40, 40, video.shape), 0, 255).astype(np.uint8)
    value = ssim(noisy, video)
    assert 0.0 < value < 0.5
    assert ssim(video, noisy) == pytest.approx(value, abs=1e-12)


def test_ssim_matches_a_direct_windowed_computation():
    # Independent reference: loop over every valid 11x11 window with explicit weighted sums.
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (1, 13, 14, 3)).astype(np.uint8)
    y = np.clip(x.astype(int) + rng.integers(-30, 30, x.shape), 0, 255).astype(np.uint8)
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for c in range(3):
        a, b = x[0, :, :, c].astype(float), y[0, :, :, c].astype(float)
        for i in range(13 - 10):
            for j in range(14 - 10):
                pa, pb = a[i:i + 11, j:j + 11], b[i:i + 11, j:j + 11]
                ma, mb = (w * pa).sum(), (w * pb).sum()
                va, vb = (w * pa * pa).sum() - ma ** 2, (w * pb * pb).sum() - mb ** 2
                cov = (w * pa * pb).sum() - ma * mb
                values.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    assert ssim(y, x) == pytest.approx(float(np.mean(values)), abs=1e-10)


def test_gaussian_window_is_normalised_and_standard():
    window = gaussian_window()
    assert window.shape == (11, 11)
    assert float(window.sum()) == pytest.approx(1.0)
    assert int(window.argmax()) == 5 * 11 + 5


def test_bad_inputs_name_the_argument():
    video = _video()
    with pytest.raises(ValueError, match="generated"):
        psnr(video[:, :16], video)
    with pytest.raises(ValueError, match="reference"):
        psnr(video, video[..., 0])
    with pytest.raises(ValueError, match="11x11"):
        ssim(video[:, :8, :8], video[:, :8, :8])


def test_lpips_random_weights_zero_for_identical_positive_otherwise():
    torch.manual_seed(0)
    for net in ("alex", "vgg"):
        model = LPIPS(net)
        for k in range(5):  # the real heads are non-negative; make the random ones so too
            head = getattr(model, f"lin{k}").model[1]
            head.weight.data.abs_()
        video = _video(t=2, h=64, w=64)
        assert lpips_video(model, video, video) == 0.0
        assert lpips_video(model, video, _video(seed=3, t=2, h=64, w=64)) > 0.0


def test_lpips_loads_local_weight_files(tmp_path):
    from safetensors.torch import save_file
    source = LPIPS("alex")
    backbone = {f"features.{k}": v for k, v in source.features.state_dict().items()}
    backbone["classifier.1.weight"] = torch.zeros(2, 2)  # torchvision files carry these; ignored
    save_file(backbone, str(tmp_path / "alexnet.safetensors"))
    heads = {f"lin{k}.model.1.weight": torch.rand_like(getattr(source, f"lin{k}").model[1].weight) for k in range(5)}
    torch.save(heads, tmp_path / "alex.pth")
    model = LPIPS.from_local_weights(tmp_path / "alexnet.safetensors", tmp_path / "alex.pth", net="alex")
    assert torch.equal(model.features[0].weight, source.features[0].weight)
    assert torch.equal(model.lin3.model[1].weight, heads["lin3.model.1.weight"])
    with pytest.raises(ValueError, match="linear_weights"):
        LPIPS.from_local_weights(tmp_path / "alexnet.safetensors", tmp_path / "alexnet.safetensors")
    with pytest.raises(ValueError, match="backbone_weights"):
        LPIPS.from_local_weights(tmp_path / "missing.pth", tmp_path / "alex.pth")
