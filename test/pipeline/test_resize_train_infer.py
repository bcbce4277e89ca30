"""Training and inference preprocess a frame identically, and pipeline outputs map back to it."""
import numpy as np
import pytest

from mask2iv_ros.data.dataset import Mask2IVDataset
from mask2iv_ros.data.sample import InteractionClip
from mask2iv_ros.pipeline.resize import center_crop_box, crop_geometry, paste_masks_into_frame
from mask2iv_ros.pipeline.validation import Mask2IVInputError

# tiny_pipe works at 32x48: 480x640 is padded left/right, 480x960 cropped, 640x480 (portrait)
# cropped top/bottom and padded left/right, 40x60 matches the model's aspect
SIZES = [(480, 640), (480, 960), (640, 480), (40, 60)]


def _scene(height, width, frames=4, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    image = ((xx * 255 // width + rng.integers(0, 40, (height, width))) % 256).astype(np.uint8)
    video = np.repeat(np.stack([image, image[::-1], 255 - image], axis=-1)[None], frames, axis=0)
    obj = np.zeros((frames, height, width), bool)
    obj[:, height // 3: height // 2, width * 2 // 5: width * 3 // 5] = True
    actor = np.zeros((frames, height, width), bool)
    actor[:, : height // 3, width // 3: width // 2] = True
    return InteractionClip(frames=video, actor_masks=actor, object_masks=obj, prompt="push the block",
                           episode_id="scene")


def _first_encoded(pipe, *args, **kwargs):
    """The frames the pipeline hands the VAE first: [first RGB frame, colour-coded first mask]."""
    encoded = []
    original = pipe.vae.encode
    pipe.vae.encode = lambda video, **kw: (encoded.append(video.clone()), original(video, **kw))[1]
    try:
        out = pipe(*args, **kwargs)
    finally:
        del pipe.vae.encode
    return encoded[0][0], out


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_training_and_inference_see_the_same_pixels(tiny_pipe, size):
    clip = _scene(*size)
    item = Mask2IVDataset([clip], num_frames=4, resolution=tiny_pipe.resolution, split="all")[0]
    first, _ = _first_encoded(tiny_pipe, clip.frames[0], clip.object_masks[0], prompt=clip.prompt,
                              actor_mask=clip.actor_masks[0], num_inference_steps=1, trajectory_only=True)
    # the pipeline's first RGB frame and colour-coded object+actor mask == the dataset's tensors
    np.testing.assert_array_equal(first[:, 0].numpy(), item["first_frame"].numpy())
    np.testing.assert_array_equal(first[:, 1].numpy(), item["object_mask_rgb"].numpy())


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_outputs_cover_the_crop_and_map_back_into_the_input_frame(tiny_pipe, size):
    in_h, in_w = size
    clip = _scene(in_h, in_w)
    out = tiny_pipe(clip.frames[0], clip.object_masks[0], prompt=clip.prompt, num_inference_steps=1)
    box = center_crop_box(in_h, in_w, *tiny_pipe.resolution)
    y0, y1, x0, x1 = crop_geometry(in_h, in_w, *tiny_pipe.resolution).window
    assert out.input_region == tuple(box) and out.input_size == (in_h, in_w)
    assert out.mask_trajectory.shape == (4, y1 - y0, x1 - x0, 3)
    assert out.video.shape == (4, y1 - y0, x1 - x0, 3)
    full = out.masks_in_input_frame()
    assert full.object_masks.shape == full.actor_masks.shape == (4, in_h, in_w)
    assert full.mask_trajectory.shape == (4, in_h, in_w, 3)
    np.testing.assert_array_equal(full.object_masks, paste_masks_into_frame(out.object_masks, box, in_h, in_w))
    x, y, w, h = box
    outside = np.ones((in_h, in_w), bool)
    outside[y:y + h, x:x + w] = False
    assert not full.object_masks[:, outside].any() and not full.actor_masks[:, outside].any()
    assert (full.mask_trajectory[:, outside] == 0).all()
    np.testing.assert_array_equal(np.all(full.mask_trajectory == (255, 0, 0), axis=-1), full.object_masks)


def test_object_outside_the_imagined_region_is_rejected(tiny_pipe):
    clip = _scene(480, 960)
    obj = np.zeros((480, 960), bool)
    obj[200:260, 10:80] = True   # left of the centre crop (x from 120)
    with pytest.raises(Mask2IVInputError, match=r"^object_mask: no pixel of the mask lies in the region"):
        tiny_pipe(clip.frames[0], obj, prompt="push", num_inference_steps=1, trajectory_only=True)
    placement = np.zeros((480, 960), bool)
    placement[:, 900:] = True
    with pytest.raises(Mask2IVInputError, match=r"^placement_mask: no pixel of the mask lies in the region"):
        tiny_pipe(clip.frames[0], clip.object_masks[0], placement_mask=placement, num_inference_steps=1,
                  trajectory_only=True)
