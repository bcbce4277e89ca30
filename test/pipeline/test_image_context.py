"""DynamiCrafter's image cross-attention branch in the pipeline (CLIP embedder + Resampler)."""

import json

import numpy as np
import pytest
import torch

from mask2iv_ros.models.resampler import Resampler, ResamplerConfig
from mask2iv_ros.pipeline import Mask2IVInputError, Mask2IVPipeline, build_tiny_pipeline
from mask2iv_ros.pipeline.pipeline import _to_tensor
from mask2iv_ros.pipeline.resize import resize_center_crop
from mask2iv_ros.pipeline.tiny import TINY_IMAGE_TOKENS_PER_FRAME

NUM_FRAMES = 4
TEXT_LEN = 16  # tiny CLIP text encoder max_length


@pytest.fixture(scope="module")
def image_pipe():
    return build_tiny_pipeline(seed=0, image_cross_attention=True, num_frames=NUM_FRAMES)


def _first_frame(pipe, image):
    """The conditioning frame as the pipeline builds it: model resolution, [-1, 1], [1, 3, H, W]."""
    return _to_tensor(resize_center_crop(image[None], *pipe.resolution, "area"), pipe.device)[:, :, 0]


def test_full_call_in_both_modes(image_pipe, inputs):
    text = image_pipe(inputs["image"], inputs["object_mask"], prompt="push the block",
                      num_inference_steps=2)
    position = image_pipe(inputs["image"], inputs["object_mask"],
                          placement_mask=inputs["placement_mask"], num_inference_steps=2)
    for out in (text, position):
        # model grid (40x60 has the model's 32x48 aspect: the whole image, no padding)
        assert out.video.shape == (NUM_FRAMES, 32, 48, 3) and out.video.dtype == np.uint8
        assert out.mask_trajectory.shape == (NUM_FRAMES, 32, 48, 3)


def test_image_tokens_change_the_output(image_pipe, inputs):
    """The branch is live: another first frame (same masks, prompt, seed) gives another video."""
    kwargs = dict(prompt="push the block", num_inference_steps=2, trajectory_only=False)
    first = image_pipe(inputs["image"], inputs["object_mask"], **kwargs)
    other = image_pipe(255 - inputs["image"], inputs["object_mask"], **kwargs)
    assert not np.array_equal(first.video, other.video)


def test_context_is_text_then_image_tokens_per_frame(image_pipe, inputs):
    images = torch.rand(2, 3, 32, 48) * 2 - 1
    context = image_pipe.encode_context(["push", "pull"], images)
    assert context.shape == (2, TEXT_LEN + NUM_FRAMES * TINY_IMAGE_TOKENS_PER_FRAME, 32)
    text, _ = image_pipe.text_encoder.encode(["push", "pull"])
    assert torch.equal(context[:, :TEXT_LEN], text)
    expected_image = image_pipe.image_projection(image_pipe.image_encoder(images))
    torch.testing.assert_close(context[:, TEXT_LEN:], expected_image)
    # per UNet: the same context; text only for a UNet without image cross-attention
    assert torch.equal(image_pipe.encode_context(["push", "pull"], images, unet="video_unet"),
                       context)
    no_image = build_tiny_pipeline(seed=0, num_frames=NUM_FRAMES)
    assert no_image.encode_context(["push"]).shape == (1, TEXT_LEN, 32)


def test_drops_follow_dynamicrafter(image_pipe):
    """Dropped prompt -> empty-prompt tokens; dropped image -> tokens of the all-zero image."""
    images = torch.rand(2, 3, 32, 48) * 2 - 1
    context = image_pipe.encode_context(["push", "pull"], images, drop_prompt=[False, True],
                                        drop_image=torch.tensor([True, False]))
    empty, _ = image_pipe.text_encoder.encode([""])
    zero_image = image_pipe.image_projection(image_pipe.image_encoder.unconditional(1))
    kept = image_pipe.encode_context(["push", "pull"], images)
    assert torch.equal(context[1, :TEXT_LEN], empty[0])
    assert torch.equal(context[0, :TEXT_LEN], kept[0, :TEXT_LEN])
    torch.testing.assert_close(context[0, TEXT_LEN:], zero_image[0])
    torch.testing.assert_close(context[1, TEXT_LEN:], kept[1, TEXT_LEN:])
    assert not torch.allclose(kept[0, TEXT_LEN:], zero_image[0])


def test_unconditional_branch_uses_empty_prompt_and_zero_image(image_pipe, inputs):
    seen = []
    hook = image_pipe.trajectory_unet_text.register_forward_pre_hook(
        lambda module, args: seen.append(args[2].clone()))
    try:
        image_pipe(inputs["image"], inputs["object_mask"], prompt="push the block",
                   num_inference_steps=1, trajectory_only=True, guidance_scale=5.0)
    finally:
        hook.remove()
    (context,) = seen
    assert context.shape[0] == 2  # conditional and unconditional branches in one batch
    frame = _first_frame(image_pipe, inputs["image"])
    conditional = image_pipe.encode_context(["push the block"], frame)
    empty, _ = image_pipe.text_encoder.encode([""])
    zero_image = image_pipe.image_projection(image_pipe.image_encoder(torch.zeros_like(frame)))
    torch.testing.assert_close(context[:1], conditional)
    assert torch.equal(context[1, :TEXT_LEN], empty[0])
    torch.testing.assert_close(context[1, TEXT_LEN:], zero_image[0])


def test_save_load_round_trip_is_bit_identical(image_pipe, inputs, tmp_path):
    image_pipe.save_pretrained(tmp_path / "pipe")
    index = json.loads((tmp_path / "pipe" / "model_index.json").read_text())
    assert index["components"]["image_encoder"] == "clip_vision"
    assert index["components"]["image_projection"] == "Resampler"
    loaded = Mask2IVPipeline.from_pretrained(tmp_path / "pipe")
    assert loaded.image_projection.config == image_pipe.image_projection.config
    kwargs = dict(prompt="push the block", num_inference_steps=2, seed=3)
    before = image_pipe(inputs["image"], inputs["object_mask"], **kwargs)
    after = loaded(inputs["image"], inputs["object_mask"], **kwargs)
    assert np.array_equal(before.video, after.video)
    assert np.array_equal(before.mask_trajectory, after.mask_trajectory)
    images = torch.rand(1, 3, 32, 48) * 2 - 1
    assert torch.equal(loaded.encode_context(["x"], images), image_pipe.encode_context(["x"], images))


def test_bad_inputs_and_components_give_clear_errors(image_pipe, inputs):
    with pytest.raises(ValueError, match=r"images: expected the 1 conditioning frames"):
        image_pipe.encode_context(["push"])
    with pytest.raises(ValueError, match="drop_image: expected a bool"):
        image_pipe.encode_context(["push"], torch.zeros(1, 3, 32, 48), drop_image=[1])
    with pytest.raises(ValueError, match="unet: expected one of"):
        image_pipe.encode_context(["push"], unet="bogus")
    with pytest.raises(Mask2IVInputError, match="num_frames: .* for 4 frames; expected 4, got 3"):
        image_pipe(inputs["image"], inputs["object_mask"], prompt="push", num_frames=3,
                   num_inference_steps=1)
    parts = dict(vae=image_pipe.vae, text_encoder=image_pipe.text_encoder,
                 trajectory_unet_text=image_pipe.trajectory_unet_text, config=image_pipe.config)
    with pytest.raises(ValueError, match="image_encoder/image_projection: .* needs both"):
        Mask2IVPipeline.from_components(**parts)
    wrong = Resampler(ResamplerConfig(dim=32, depth=1, dim_head=16, heads=2, num_queries=4,
                                      embedding_dim=32, output_dim=24, video_length=NUM_FRAMES))
    with pytest.raises(ValueError, match="config.output_dim 24 does not match"):
        Mask2IVPipeline.from_components(**parts, image_encoder=image_pipe.image_encoder,
                                        image_projection=wrong)
