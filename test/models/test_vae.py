import pytest
import torch
from diffusers import AutoencoderKL

from mask2iv_ros.models.vae import SD_SCALE_FACTOR, VideoVAE, sd21_vae_config, tiny_vae_config


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return VideoVAE.from_config(tiny_vae_config(), chunk_size=3).eval()


def _video(b=2, t=5, h=32, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, t, h, w, generator=g) * 2 - 1


def test_sd21_layout_matches_stable_diffusion_vae():
    with torch.device("meta"):
        autoencoder = AutoencoderKL(**sd21_vae_config())
    # kl-f8 VAE of Stable Diffusion 1.x/2.x (DynamiCrafter's first_stage_model)
    assert sum(p.numel() for p in autoencoder.parameters()) == 83_653_863
    assert VideoVAE(autoencoder).spatial_factor == 8
    assert VideoVAE(autoencoder).scale_factor == SD_SCALE_FACTOR


@torch.no_grad()
def test_shapes_and_range(vae):
    video = _video()
    latents = vae.encode(video)
    assert latents.shape == (2, 4, 5, 4, 6)
    decoded = vae.decode(latents)
    assert decoded.shape == video.shape
    assert decoded.min() >= -1 and decoded.max() <= 1


@torch.no_grad()
def test_framewise_chunking_and_scaling(vae):
    video = _video()
    latents = vae.encode(video)  # chunk_size 3 over 10 frames: chunks 3,3,3,1
    # frame (b=1, t=3) on its own, through the raw AutoencoderKL: posterior mean * 0.18215
    frame = video[1:2, :, 3]
    expected = vae.autoencoder.encode(frame).latent_dist.mode() * SD_SCALE_FACTOR
    torch.testing.assert_close(latents[1:2, :, 3], expected, rtol=1e-5, atol=1e-5)
    one_chunk = VideoVAE(vae.autoencoder, chunk_size=64)
    torch.testing.assert_close(one_chunk.encode(video), latents, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(one_chunk.decode(latents), vae.decode(latents), rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_mode_is_deterministic_sample_uses_generator(vae):
    video = _video(b=1, t=2)
    torch.testing.assert_close(vae.encode(video), vae.encode(video), rtol=0, atol=0)
    first = vae.encode(video, sample=True, generator=torch.Generator().manual_seed(1))
    again = vae.encode(video, sample=True, generator=torch.Generator().manual_seed(1))
    other = vae.encode(video, sample=True, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.equal(first, other)
    assert not torch.equal(first, vae.encode(video))


@torch.no_grad()
def test_save_load_round_trip(vae, tmp_path):
    vae.save_pretrained(tmp_path / "vae")
    assert {p.name for p in (tmp_path / "vae").iterdir()} == {
        "config.json", "diffusion_pytorch_model.safetensors"}
    loaded = VideoVAE.from_pretrained(tmp_path / "vae")
    video = _video(b=1, t=2)
    assert torch.equal(loaded.encode(video), vae.encode(video))


def test_bad_input_errors(vae):
    with pytest.raises(ValueError, match=r"video: expected a \[B, C, T, H, W\]"):
        vae.encode(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="video: expected 3 channels"):
        vae.encode(torch.zeros(1, 4, 2, 32, 32))
    with pytest.raises(ValueError, match="chunk_size"):
        VideoVAE(vae.autoencoder, chunk_size=0)
