import numpy as np
import pytest

from mask2iv_ros.pipeline import Mask2IVInputError
from mask2iv_ros.pipeline.validation import check_inputs

H, W = 40, 60


def _good():
    image = np.zeros((H, W, 3), np.uint8)
    object_mask = np.zeros((H, W), bool)
    object_mask[5:10, 5:10] = True
    return dict(image=image, object_mask=object_mask, prompt="push the block")


def _bad(**changes):
    args = _good()
    args.update(changes)
    return args


NAN_IMAGE = np.full((H, W, 3), np.nan, np.float32)
EMPTY = np.zeros((H, W), bool)
PLACEMENT = np.ones((H, W), bool)

CASES = {
    "image type": (_bad(image=[[0]]), r"^image: expected a numpy uint8 array \[H, W, 3\]"),
    "image gray": (_bad(image=np.zeros((H, W), np.uint8)), r"^image: expected shape \[H, W, 3\]"),
    "image rgba": (_bad(image=np.zeros((H, W, 4), np.uint8)), r"^image: .*3 channels.*got \(40, 60, 4\)"),
    "image dtype": (_bad(image=np.zeros((H, W, 3), np.int32)), r"^image: expected dtype uint8"),
    "image nan": (_bad(image=NAN_IMAGE), r"^image: contains NaN"),
    "image float range": (_bad(image=np.full((H, W, 3), 255.0)), r"^image: float images must be in \[0, 1\]"),
    "mask shape": (_bad(object_mask=np.ones((H, W - 1), bool)),
                   r"^object_mask: expected a 2-D mask of shape \(40, 60\) matching image, got \(40, 59\)"),
    "mask nan": (_bad(object_mask=np.full((H, W), np.nan)), r"^object_mask: contains NaN"),
    "empty object": (_bad(object_mask=EMPTY), r"^object_mask: the mask is empty"),
    "actor shape": (_bad(actor_mask=np.ones((W, H), bool)), r"^actor_mask: expected a 2-D mask of shape"),
    "empty placement": (_bad(prompt=None, placement_mask=EMPTY), r"^placement_mask: the mask is empty"),
    "both": (_bad(placement_mask=PLACEMENT), r"^prompt/placement_mask: expected exactly one .* got both"),
    "neither": (_bad(prompt=None), r"^prompt/placement_mask: expected exactly one .* got neither"),
    "empty prompt": (_bad(prompt="  "), r"^prompt: expected a non-empty string"),
    "mode missing": (_bad(prompt=None, placement_mask=PLACEMENT),
                     r"^placement_mask: this checkpoint has no position-conditioned trajectory model"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_input_errors_name_the_argument(name):
    args, pattern = CASES[name]
    with pytest.raises(Mask2IVInputError, match=pattern):
        check_inputs(args["image"], args["object_mask"], args.get("prompt"),
                     args.get("placement_mask"), args.get("actor_mask"), modes=("text",))


def test_valid_inputs_are_normalised():
    image = np.random.default_rng(0).random((H, W, 3)).astype(np.float32)
    mask = np.zeros((H, W), np.uint8)
    mask[1, 1] = 255
    got = check_inputs(image, mask, None, np.eye(H, W), None, modes=("text", "position"))
    assert got.mode == "position" and got.image.dtype == np.uint8
    assert got.object_mask.dtype == bool and got.object_mask.sum() == 1
    assert got.placement_mask.sum() == H
    assert issubclass(Mask2IVInputError, ValueError)


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(num_frames=1), r"^num_frames: expected an int in \[2, 128\], got 1"),
    (dict(num_frames=4.0), r"^num_frames: expected an int"),
    (dict(num_inference_steps=0), r"^num_inference_steps: expected an int in \[1, 1000\]"),
    (dict(guidance_scale=float("nan")), r"^guidance_scale: expected a finite number"),
    (dict(guidance_scale=-1.0), r"^guidance_scale: expected a finite number in \[0.0, 100.0\]"),
    (dict(guidance_rescale=1.5), r"^guidance_rescale: expected a finite number in \[0.0, 1.0\]"),
    (dict(seed=-1), r"^seed: expected an int"),
])
def test_call_argument_ranges(tiny_pipe, kwargs, pattern):
    good = _good()
    kwargs = {"num_inference_steps": 1, **kwargs}
    with pytest.raises(Mask2IVInputError, match=pattern):
        tiny_pipe(good["image"], good["object_mask"], prompt="push", **kwargs)
