"""video_background="input": the imagined video composited onto the input image outside the
actor/object regions of the input and of each imagined frame."""
import numpy as np
import pytest

from mask2iv_ros.masks import ACTOR, OBJECT
from mask2iv_ros.pipeline.background import (input_background_weights, keep_input_background,
                                              margin_px)


def _scene(frames=3, size=64):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    video = rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
    input_object = np.zeros((size, size), bool)
    input_object[10:20, 10:20] = True
    labels = np.zeros((frames, size, size), np.uint8)
    labels[:, 40:50, 40:50] = OBJECT         # the object imagined elsewhere
    labels[1, 0:30, 50:56] = ACTOR           # an arm in frame 1 only
    return image, video, input_object, labels


def test_weights_keep_the_input_only_far_from_every_moving_region():
    image, video, input_object, labels = _scene()
    weights = input_background_weights(input_object, labels)
    assert weights.shape == (3, 64, 64, 1) and weights.dtype == np.float32
    assert weights.min() >= 0 and weights.max() <= 1
    assert margin_px(64, 64) == 2 and margin_px(320, 512) == 10
    for t in range(3):
        assert weights[t, 15, 15, 0] == 0 and weights[t, 45, 45, 0] == 0   # input and imagined object
        assert weights[t, 60, 5, 0] == 1                                   # table far from both
    assert weights[1, 10, 53, 0] == 0 and weights[0, 10, 53, 0] == 1       # the arm, where it is


def test_composite_is_the_input_on_static_table_and_the_model_where_things_move():
    image, video, input_object, labels = _scene()
    out = keep_input_background(video, image, input_object, labels)
    assert out.shape == video.shape and out.dtype == np.uint8
    weights = input_background_weights(input_object, labels)[..., 0]
    assert (out[weights == 1] == np.broadcast_to(image, video.shape)[weights == 1]).all()
    assert (out[weights == 0] == video[weights == 0]).all()
    # nothing moving anywhere: the input image, every frame
    still = keep_input_background(video, image, np.zeros((64, 64), bool), np.zeros((3, 64, 64), np.uint8))
    assert (still == image).all()


def test_pipeline_video_background(tiny_pipe, inputs):
    kwargs = dict(placement_mask=inputs["placement_mask"], actor_mask=inputs["actor_mask"],
                  num_inference_steps=2, seed=3)
    own = tiny_pipe(inputs["image"], inputs["object_mask"], **kwargs, video_background="imagined")
    kept = tiny_pipe(inputs["image"], inputs["object_mask"], **kwargs, video_background="input")
    default = tiny_pipe(inputs["image"], inputs["object_mask"], **kwargs)
    assert (default.video == own.video).all()            # recorded default: the model's pixels
    # each output says whose pixels its video shows; a trajectory-only call has none to say
    assert (own.video_background, kept.video_background, default.video_background) == \
        ("imagined", "input", "imagined")
    assert tiny_pipe(inputs["image"], inputs["object_mask"], **kwargs, video_background="input",
                     trajectory_only=True).video_background is None
    assert (kept.mask_trajectory == own.mask_trajectory).all()   # masks untouched
    assert not (kept.video == own.video).all()
    # the composite moved every frame towards the input image (on the model grid)
    model_image = tiny_pipe_model_image(tiny_pipe, inputs["image"])
    error = lambda video: np.abs(video.astype(int) - model_image.astype(int)).mean()
    assert error(kept.video) < error(own.video)
    with pytest.raises(ValueError, match=r"video_background: expected one of \['imagined', 'input'\], got 'camera'"):
        tiny_pipe(inputs["image"], inputs["object_mask"], **kwargs, video_background="camera")


def tiny_pipe_model_image(pipe, image):
    from mask2iv_ros.pipeline import resize
    return resize.resize_center_crop(image[None], *pipe.resolution, "area")[0]
