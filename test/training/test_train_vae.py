"""mask2iv-train-vae on a tiny synthetic dataset: a loadable VAE, a latent scale, a budget."""

import json
import math

import pytest
import torch

from mask2iv_ros.data.synthetic import SyntheticConfig, write_synthetic_dataset
from mask2iv_ros.models.vae import VideoVAE
from mask2iv_ros.training.train_vae import _frame_batches, main, train_vae
from mask2iv_ros.data.dataset import Mask2IVDataset


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("vae_data")
    write_synthetic_dataset(root, 4, seed=3, config=SyntheticConfig(height=32, width=32, num_frames=8),
                            progress=False)
    return root


def test_frame_batches_mix_rgb_and_mask_frames(clips):
    dataset = Mask2IVDataset(clips, num_frames=4, frame_stride=1, resolution=(32, 32))
    batches = _frame_batches(dataset, batch_size=6, seed=0)
    seen = [next(batches) for _ in range(5)]
    assert all(b.shape == (6, 3, 32, 32) for b in seen)
    frames = torch.cat(seen)
    assert frames.min() >= -1 and frames.max() <= 1
    # mask frames are palette-coloured: many pixels at exactly -1 (black background)
    assert (frames == -1).all(dim=1).flatten(1).float().mean(dim=1).max() > 0.5


def test_train_vae_writes_a_loadable_autoencoder(clips, tmp_path):
    result = train_vae(str(clips), str(tmp_path / "vae"), steps=3, batch_size=4, lr=1e-3,
                       resolution=(32, 32), num_frames=4, frame_stride=1,
                       block_out_channels=(8, 8), progress=False, device="cpu", log_every=1)
    assert result["steps"] == 3 and math.isfinite(result["final_l1"])
    assert result["scaling_factor"] > 0 and math.isfinite(result["scaling_factor"])
    vae = VideoVAE.from_pretrained(tmp_path / "vae")
    assert vae.spatial_factor == 2
    assert vae.autoencoder.config.scaling_factor == pytest.approx(result["scaling_factor"])
    log = json.loads((tmp_path / "vae" / "training_log.json").read_text())
    assert [h["step"] for h in log["history"]] == [1, 2, 3]
    latents = vae.encode(torch.zeros(1, 3, 2, 32, 32))
    assert latents.shape == (1, 4, 2, 16, 16)


def test_train_vae_budget_and_cli(clips, tmp_path, capsys):
    # A budget far below the probe's own time: training stops right after the 30 probe steps.
    code = main(["--data", str(clips), "--output", str(tmp_path / "vae"), "--steps", "500",
                 "--batch-size", "2", "--resolution", "32", "32", "--num-frames", "2",
                 "--frame-stride", "1", "--block-out-channels", "4", "4", "--device", "cpu",
                 "--time-budget-minutes", "0.0001", "--no-progress"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 30
    with pytest.raises(SystemExit):
        main(["--data", str(clips), "--output", str(tmp_path / "x"), "--steps", "0"])


def test_decoder_only_keeps_the_encoder_and_its_latents(clips, tmp_path):
    common = dict(resolution=(32, 32), num_frames=4, frame_stride=1, block_out_channels=(8, 8),
                  progress=False, device="cpu", batch_size=4)
    train_vae(str(clips), str(tmp_path / "base"), steps=2, **common)
    train_vae(str(clips), str(tmp_path / "dec"), steps=3, lr=1e-2, init_from=str(tmp_path / "base"),
              decoder_only=True, latent_noise=0.5, **common)
    base = VideoVAE.from_pretrained(tmp_path / "base")
    dec = VideoVAE.from_pretrained(tmp_path / "dec")
    before, after = base.autoencoder.state_dict(), dec.autoencoder.state_dict()
    encoder = [k for k in before if k.startswith(("encoder.", "quant_conv."))]
    decoder = [k for k in before if k.startswith(("decoder.", "post_quant_conv."))]
    assert encoder and all(torch.equal(before[k], after[k]) for k in encoder)
    assert any(not torch.equal(before[k], after[k]) for k in decoder)
    assert dec.autoencoder.config.scaling_factor == base.autoencoder.config.scaling_factor
    video = torch.rand(1, 3, 2, 32, 32) * 2 - 1
    assert torch.equal(base.encode(video), dec.encode(video))
    with pytest.raises(ValueError, match="decoder_only"):
        train_vae(str(clips), str(tmp_path / "x"), steps=1, decoder_only=True, **common)
    with pytest.raises(ValueError, match="latent_noise"):
        train_vae(str(clips), str(tmp_path / "x"), steps=1, latent_noise=-1.0, **common)
