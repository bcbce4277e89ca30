"""config.sampling.stage2_masks: what stage 2 is conditioned on, from the decoded stage-1 video.

The released two-stage inference (jes-bro/Mask2IV scripts/evaluation/inference_bdv2_2stage.py)
binarises the decoded stage-1 sample per channel, ``torch.where(sample[0] >= 0, 1, -1)``, and
encodes that; "palette" snaps every pixel to the nearest palette colour instead."""
import dataclasses

import torch

from mask2iv_ros.convert import pipeline_config
from mask2iv_ros.masks import labels_to_rgb, palette_labels


class VAESpy:
    """Records what the pipeline decodes and encodes."""

    def __init__(self, vae):
        self.vae, self.decoded, self.encoded = vae, [], []

    def __enter__(self):
        encode, decode = self.vae.encode, self.vae.decode

        def spy_encode(video, *args, **kwargs):
            self.encoded.append(video.clone())
            return encode(video, *args, **kwargs)

        def spy_decode(latents, *args, **kwargs):
            out = decode(latents, *args, **kwargs)
            self.decoded.append(out.clone())
            return out
        self.vae.encode, self.vae.decode = spy_encode, spy_decode
        return self

    def __exit__(self, *exc):
        del self.vae.encode, self.vae.decode


def _run(pipe, inputs, stage2_masks):
    pipe.config = dataclasses.replace(
        pipe.config, sampling=dataclasses.replace(pipe.config.sampling, stage2_masks=stage2_masks))
    with VAESpy(pipe.vae) as spy:
        out = pipe(inputs["image"], inputs["object_mask"], placement_mask=inputs["placement_mask"],
                   actor_mask=inputs["actor_mask"], num_inference_steps=2, guidance_scale=1.0, seed=5)
    # decodes: stage-1 trajectory, then the video; encodes: the condition frames, then stage 2's masks
    assert len(spy.decoded) == 2 and len(spy.encoded) == 2
    return out, spy.decoded[0], spy.encoded[1]


def test_channel_sign_is_the_release_binarisation(tiny_pipe, inputs):
    out, decoded, stage2 = _run(tiny_pipe, inputs, "channel_sign")
    assert torch.equal(stage2, torch.where(decoded >= 0, 1.0, -1.0))
    assert set(stage2.unique().tolist()) <= {-1.0, 1.0}
    assert out.video is not None


def test_palette_is_the_snapped_trajectory(tiny_pipe, inputs):
    _, decoded, stage2 = _run(tiny_pipe, inputs, "palette")
    frames = ((decoded[0].permute(1, 2, 3, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    snapped = labels_to_rgb(palette_labels(frames.numpy(), tiny_pipe.palette), tiny_pipe.palette)
    assert torch.equal(stage2[0], torch.from_numpy(snapped).permute(3, 0, 1, 2).float() / 127.5 - 1)
    # a random tiny model decodes colours off the palette, so the two rules differ
    assert not torch.equal(stage2, torch.where(decoded >= 0, 1.0, -1.0))


def test_released_conversions_record_channel_sign():
    config = pipeline_config((320, 512), 16, 8.0, 15, "released", 0.7)
    assert config.sampling.stage2_masks == "channel_sign"
