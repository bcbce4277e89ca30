"""The release's preprocessing (short-side resize + centre crop) and its inverse for outputs.

The geometry is checked against torchvision's ``Resize(min(H, W))`` + ``CenterCrop((H, W))`` (the
transform of the released Mask2IV/DynamiCrafter data and inference code), recorded in
test/fixtures/preprocessing/torchvision_resize_center_crop.json (see its "note").
"""
import json
from pathlib import Path

import numpy as np
import pytest

from mask2iv_ros.pipeline.resize import (CropBox, center_crop_box, crop_geometry,
                                         mask_to_model_grid, paste_frames_into_image,
                                         paste_masks_into_frame, resize_center_crop)
from mask2iv_ros.pipeline.validation import Mask2IVInputError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "preprocessing" / "torchvision_resize_center_crop.json"
CASES = json.loads(FIXTURE.read_text())["cases"]


def _index_image(in_h, in_w):
    """int32 [1, H, W, 2]: (row + 1, col + 1) of every pixel; 0 after the transform = padding."""
    rows, cols = np.meshgrid(np.arange(in_h) + 1, np.arange(in_w) + 1, indexing="ij")
    return np.stack([rows, cols], axis=-1)[None].astype(np.int32)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "{}x{}->{}x{}".format(*c["input"], *c["output"]))
def test_nearest_matches_torchvision(case):
    """Which input pixel lands on every model pixel (and which are padding), as torchvision does."""
    (in_h, in_w), (out_h, out_w) = case["input"], case["output"]
    out = resize_center_crop(_index_image(in_h, in_w), out_h, out_w, "nearest")[0]
    assert out.shape == (out_h, out_w, 2)
    expected_rows, expected_cols = np.array(case["rows"]), np.array(case["cols"])
    window = crop_geometry(in_h, in_w, out_h, out_w).window
    y0, y1, x0, x1 = window
    np.testing.assert_array_equal(out[:, x0 if x1 > x0 else 0, 0] - 1, expected_rows)
    np.testing.assert_array_equal(out[y0 if y1 > y0 else 0, :, 1] - 1, expected_cols)
    # the window is exactly the non-padded part
    assert (expected_rows >= 0).nonzero()[0].tolist() == list(range(y0, y1))
    assert (expected_cols >= 0).nonzero()[0].tolist() == list(range(x0, x1))


@pytest.mark.parametrize("case", CASES, ids=lambda c: "{}x{}->{}x{}".format(*c["input"], *c["output"]))
def test_image_interpolation_follows_torchvision_geometry(case):
    """A linear ramp resized with area/linear lands where torchvision's antialiased bilinear puts it."""
    (in_h, in_w), (out_h, out_w) = case["input"], case["output"]
    ramp = np.stack(np.meshgrid(np.arange(in_h, dtype=np.float32), np.arange(in_w, dtype=np.float32),
                                indexing="ij"), axis=-1)
    out = resize_center_crop(ramp[None], out_h, out_w, "area")[0]
    g = crop_geometry(in_h, in_w, out_h, out_w)
    y0, y1, x0, x1 = g.window
    row_profile, col_profile = out[y0:y1, (x0 + x1) // 2, 0], out[(y0 + y1) // 2, x0:x1, 1]
    expected_rows = np.array(case["row_ramp"])[y0:y1]
    expected_cols = np.array(case["col_ramp"])[x0:x1]
    # away from the image border (where the two filters clamp differently) they agree to a
    # fraction of an input pixel
    inner_r = slice(2, -2) if len(row_profile) > 6 else slice(None)
    inner_c = slice(2, -2) if len(col_profile) > 6 else slice(None)
    tol_r, tol_c = 0.02 * in_h / g.resized_h + 0.02, 0.02 * in_w / g.resized_w + 0.02
    np.testing.assert_allclose(row_profile[inner_r], expected_rows[inner_r], atol=max(tol_r, 0.51))
    np.testing.assert_allclose(col_profile[inner_c], expected_cols[inner_c], atol=max(tol_c, 0.51))


def test_crop_boxes_of_common_cameras():
    # 640x480 into a square model at an exact factor: the centre 480x480
    assert center_crop_box(480, 640, 240, 240) == CropBox(80, 0, 480, 480)
    # portrait: the centre rows
    assert center_crop_box(640, 480, 240, 240) == CropBox(0, 80, 480, 480)
    # 4:3 into the release's 320x512 (16:10): the release pads the sides, the whole image is seen
    assert center_crop_box(480, 640, 320, 512) == CropBox(0, 0, 640, 480)
    g = crop_geometry(480, 640, 320, 512)
    assert (g.resized_h, g.resized_w, g.top, g.left) == (320, 426, 0, -43)
    assert g.window == (0, 320, 43, 469)
    # 16:9 into 320x512: the centre columns
    assert center_crop_box(1080, 1920, 320, 512) == CropBox(95, 0, 1730, 1080)
    # matching size: identity
    assert center_crop_box(320, 512, 320, 512) == CropBox(0, 0, 512, 320)
    assert crop_geometry(320, 512, 320, 512).is_identity


def test_padding_is_black_image_and_background_mask():
    image = np.full((1, 480, 640, 3), 200, np.uint8)
    out = resize_center_crop(image, 320, 512, "area")[0]
    assert out.shape == (320, 512, 3)
    assert (out[:, :43] == 0).all() and (out[:, 469:] == 0).all() and (out[:, 43:469] == 200).all()
    mask = np.ones((1, 480, 640), bool)
    out_mask = resize_center_crop(mask, 320, 512, "nearest")[0]
    assert out_mask.dtype == bool and out_mask[:, 43:469].all() and not out_mask[:, :43].any()


def _block_mask(in_h, in_w, block, rng, inside=None):
    """A random mask made of block x block squares aligned to the grid, optionally only inside a box."""
    coarse = rng.random((in_h // block, in_w // block)) < 0.3
    mask = np.kron(coarse, np.ones((block, block), bool))
    if inside is not None:
        x, y, w, h = inside
        keep = np.zeros_like(mask)
        keep[y:y + h, x:x + w] = True
        mask &= keep
    return mask


@pytest.mark.parametrize("in_size, out_size", [((480, 640), (240, 240)), ((640, 480), (240, 240)),
                                               ((480, 640), (240, 320)), ((480, 640), (480, 640))])
def test_mask_round_trips_to_the_same_pixels(in_size, out_size):
    """Input frame -> model grid -> input frame gives back the mask inside the crop, 0 outside."""
    (in_h, in_w), (out_h, out_w) = in_size, out_size
    rng = np.random.default_rng(0)
    factor = in_h // crop_geometry(in_h, in_w, out_h, out_w).resized_h  # exact: 2 or 1
    mask = _block_mask(in_h, in_w, factor, rng)
    box = center_crop_box(in_h, in_w, out_h, out_w)
    g = crop_geometry(in_h, in_w, out_h, out_w)
    model = resize_center_crop(mask[None], out_h, out_w, "nearest")
    back = paste_masks_into_frame(g.visible(model), box, in_h, in_w)[0]
    assert back.shape == (in_h, in_w) and back.dtype == bool
    x, y, w, h = box
    np.testing.assert_array_equal(back[y:y + h, x:x + w], mask[y:y + h, x:x + w])
    outside = np.ones_like(back)
    outside[y:y + h, x:x + w] = False
    assert not back[outside].any()
    if (in_size, out_size) == ((480, 640), (240, 240)):
        assert box == (80, 0, 480, 480) and mask[:, :80].any()  # mask pixels outside were dropped


def test_round_trip_at_an_inexact_scale_keeps_the_object():
    """640x480 into 64x64 (scale 2/15): an object comes back to within one model pixel (7.5 px)."""
    mask = np.zeros((480, 640), bool)
    mask[150:330, 250:430] = True
    box = center_crop_box(480, 640, 64, 64)
    g = crop_geometry(480, 640, 64, 64)
    back = paste_masks_into_frame(g.visible(resize_center_crop(mask[None], 64, 64, "nearest")), box, 480, 640)[0]
    ys, xs = back.any(1).nonzero()[0], back.any(0).nonzero()[0]
    edges = np.array([ys[0], ys[-1] + 1, xs[0], xs[-1] + 1])
    assert np.abs(edges - [150, 330, 250, 430]).max() <= 8
    assert (back & mask).sum() / (back | mask).sum() > 0.9
    x, y, w, h = box
    assert not back[:, :x].any() and not back[:, x + w:].any()


def test_paste_keeps_channels_and_checks_the_box():
    rgb = np.zeros((2, 4, 4, 3), np.uint8)
    rgb[:, 1, 2] = (255, 0, 0)
    out = paste_masks_into_frame(rgb, (2, 1, 8, 8), 10, 12)
    assert out.shape == (2, 10, 12, 3) and (out[:, 3:5, 6:8] == (255, 0, 0)).all()
    assert out.reshape(-1, 3).any(axis=1).sum() == 2 * 4
    with pytest.raises(ValueError, match=r"box: expected \(x_offset, y_offset, width, height\) inside"):
        paste_masks_into_frame(rgb, (6, 0, 8, 8), 10, 12)
    with pytest.raises(ValueError, match=r"masks: expected a non-empty array"):
        paste_masks_into_frame(rgb[0, 0], (0, 0, 4, 4), 10, 12)


def test_bad_arguments_name_the_field():
    with pytest.raises(ValueError, match="interpolation: expected one of"):
        resize_center_crop(np.zeros((1, 8, 8), np.uint8), 4, 4, "bicubic")
    with pytest.raises(ValueError, match="out_w: expected a positive int"):
        crop_geometry(8, 8, 4, 0)


def test_conditioning_mask_outside_the_crop_is_an_error_naming_it():
    mask = np.zeros((480, 640), bool)
    mask[200:240, 10:60] = True  # left of the 480-wide centre crop
    with pytest.raises(Mask2IVInputError, match=r"object_mask: no pixel of the mask lies in the region the "
                                                r"model sees \(x_offset=80, y_offset=0, width=480"):
        mask_to_model_grid("object_mask", mask, 240, 240)


def test_thin_conditioning_mask_is_never_lost():
    mask = np.zeros((480, 640), bool)
    mask[201, 300:340] = True   # one row: nearest at factor 15/2 may skip it
    small = mask_to_model_grid("object_mask", mask, 64, 64)
    assert small.any() and small.sum() <= 12
    nearest = resize_center_crop(mask[None], 64, 64, "nearest")[0]
    block = np.zeros((480, 640), bool)
    block[150:330, 250:430] = True
    np.testing.assert_array_equal(mask_to_model_grid("object_mask", block, 64, 64),
                                  resize_center_crop(block[None], 64, 64, "nearest")[0])
    assert not nearest.any()


def test_video_is_laid_over_the_input_in_its_region():
    image = np.full((480, 640, 3), 50, np.uint8)
    video = np.full((2, 240, 240, 3), 180, np.uint8)
    out = paste_frames_into_image(video, (80, 0, 480, 480), image)
    assert out.shape == (2, 480, 640, 3)
    assert (out[:, :, 80:560] == 180).all() and (out[:, :, :80] == 50).all() and (out[:, :, 560:] == 50).all()
