import cv2
import numpy as np
import pytest

from mask2iv_ros.masks import (ACTOR, BACKGROUND, DEFAULT_PALETTE, OBJECT, MaskPalette,
                               decode_mask_video, encode_mask_video, encode_masks, majority_vote,
                               overlay_masks, palette_labels, snap_to_palette)


def _masks(t=3, h=24, w=32):
    """Object box moving right, actor box overlapping it on the left."""
    obj = np.zeros((t, h, w), bool)
    actor = np.zeros((t, h, w), bool)
    for i in range(t):
        obj[i, 8:16, 6 + 4 * i:14 + 4 * i] = True
        actor[i, 4:12, 2 + 4 * i:9 + 4 * i] = True
    return obj, actor


def test_encode_colors_and_object_wins_overlap():
    obj, actor = _masks()
    rgb = encode_masks(obj[0], actor[0])
    assert rgb.dtype == np.uint8 and rgb.shape == (24, 32, 3)
    assert tuple(rgb[0, 0]) == DEFAULT_PALETTE.background
    assert tuple(rgb[14, 10]) == DEFAULT_PALETTE.object
    assert tuple(rgb[5, 3]) == DEFAULT_PALETTE.actor
    overlap = obj[0] & actor[0]
    assert overlap.any() and (rgb[overlap] == DEFAULT_PALETTE.object).all()


def test_video_round_trip_exact():
    obj, actor = _masks()
    rgb = encode_mask_video(obj, actor)
    assert rgb.shape == (3, 24, 32, 3)
    decoded_actor, decoded_obj = decode_mask_video(rgb)
    np.testing.assert_array_equal(decoded_obj, obj)
    np.testing.assert_array_equal(decoded_actor, actor & ~obj)
    # single frame and no actor
    a, o = decode_mask_video(encode_masks(obj[1]))
    np.testing.assert_array_equal(o, obj[1])
    assert not a.any()


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


@pytest.mark.parametrize("drift", ["noise", "blur", "brighter", "darker_tinted", "float"])
def test_decode_robust_to_vae_like_drift(drift):
    obj, actor = _masks()
    rgb = encode_mask_video(obj, actor).astype(np.float32)
    rng = np.random.default_rng(0)
    if drift == "noise":
        rgb = rgb + rng.normal(0, 30, rgb.shape)
    elif drift == "blur":
        rgb = np.stack([cv2.GaussianBlur(f, (5, 5), 1.5) for f in rgb])
    elif drift == "brighter":
        rgb = rgb * 0.8 + 50
    elif drift == "darker_tinted":
        rgb = rgb * 0.7 + np.array([10, -5, 30])
    if drift == "float":
        rgb = rgb / 255.0 + rng.normal(0, 0.08, rgb.shape)  # float input is in [0, 1]
    else:
        rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    decoded_actor, decoded_obj = decode_mask_video(rgb)
    assert _iou(decoded_obj, obj) > 0.9
    assert _iou(decoded_actor, actor & ~obj) > 0.85


def test_snap_and_custom_palette():
    palette = MaskPalette(background=(255, 255, 255), object=(0, 0, 255), actor=(255, 128, 0))
    obj, actor = _masks()
    rgb = encode_mask_video(obj, actor, palette)
    noisy = np.clip(rgb.astype(int) + np.random.default_rng(1).integers(-40, 40, rgb.shape), 0, 255)
    snapped = snap_to_palette(noisy.astype(np.uint8), palette)
    np.testing.assert_array_equal(snapped, rgb)
    assert MaskPalette.from_dict(palette.to_dict()) == palette


def test_snap_weights_make_a_role_rarer_on_blurred_edges():
    # a blurred object edge: pixels from the background's black to the object's red
    ramp = np.zeros((1, 11, 3), np.uint8)
    ramp[0, :, 0] = np.linspace(0, 255, 11).astype(np.uint8)
    plain = palette_labels(ramp)
    assert plain.tolist() == [[0] * 6 + [1] * 5]            # nearest colour: from 128 up
    rarer = MaskPalette(snap_weights=(1.0, 4.0, 1.0))        # object distances x4 (= 2x in RGB)
    labels = palette_labels(ramp, rarer)
    assert labels.tolist() == [[0] * 7 + [1] * 4]            # object only from 2/3 of the way up
    assert MaskPalette.from_dict(rarer.to_dict()) == rarer
    assert rarer.to_dict()["snap_weights"] == [1.0, 4.0, 1.0]
    # a palette with the plain rule writes no weights (folders from before them read the same)
    assert "snap_weights" not in DEFAULT_PALETTE.to_dict()
    assert MaskPalette.from_dict({"object": [255, 0, 0]}).snap_weights == (1.0, 1.0, 1.0)
    for bad in ((1.0, 0.0, 1.0), (1.0, 2.0), (1.0, float("nan"), 1.0), "heavy"):
        with pytest.raises(ValueError, match=r"MaskPalette.snap_weights: expected 3 positive numbers \(background, object, actor\)"):
            MaskPalette(snap_weights=bad)


def test_majority_vote_removes_stray_pixels_and_straightens_edges():
    labels = np.zeros((2, 12, 12), np.uint8)
    labels[:, 3:9, 3:9] = OBJECT                     # a 6x6 object
    clean = labels.copy()
    labels[0, 0, 11] = ACTOR                         # a stray actor pixel in the background
    labels[0, 5, 8] = BACKGROUND                     # a notch in the object's right edge
    labels[1, 5, 9] = OBJECT                         # a bump out of it
    voted = majority_vote(labels, 3)
    # the price: a square's corner pixel sees 4 of 9 object pixels and is voted away
    for row, col in ((3, 3), (3, 8), (8, 3), (8, 8)):
        clean[:, row, col] = BACKGROUND
    assert voted.tolist() == clean.tolist()
    assert majority_vote(labels, 1) is labels        # 1 = off: the same array, no pass
    # a tie keeps the pixel's own label: a 2-pixel-wide stripe of actor across the background
    stripe = np.zeros((6, 6), np.uint8)
    stripe[:, 2:4] = ACTOR
    assert majority_vote(stripe, 3).tolist() == stripe.tolist()
    # a corner pixel sees 4 (replicated border) of 9 of a role and keeps it only on a tie
    assert majority_vote(stripe[None], 3).shape == (1, 6, 6)
    with pytest.raises(ValueError, match="labels: expected"):
        majority_vote(np.zeros(5, np.uint8), 3)


def test_palette_vote_kernel_is_applied_by_the_snap_and_recorded_only_when_on():
    rgb = np.zeros((1, 10, 10, 3), np.uint8)
    rgb[0, 2:8, 2:8, 0] = 255                        # a red object
    rgb[0, 5, 5] = (0, 255, 0)                       # one green (actor) pixel inside it
    assert palette_labels(rgb)[0, 5, 5] == ACTOR
    voting = MaskPalette(vote_kernel=3)
    assert palette_labels(rgb, voting)[0, 5, 5] == OBJECT
    assert voting.to_dict()["vote_kernel"] == 3 and MaskPalette.from_dict(voting.to_dict()) == voting
    assert "vote_kernel" not in DEFAULT_PALETTE.to_dict()   # folders from before read the same
    assert MaskPalette.from_dict({"object": [255, 0, 0]}).vote_kernel == 1
    for bad in (0, 2, -3, 1.5, True, "3"):
        with pytest.raises(ValueError, match=r"MaskPalette.vote_kernel: expected an odd int >= 1 \(1 = no vote\)"):
            MaskPalette(vote_kernel=bad)


def test_palette_and_input_errors():
    with pytest.raises(ValueError, match="MaskPalette.object"):
        MaskPalette(object=(300, 0, 0))
    with pytest.raises(ValueError, match="must differ"):
        MaskPalette(actor=(255, 0, 0))
    with pytest.raises(ValueError, match="actor_mask"):
        encode_masks(np.zeros((4, 4), bool), np.zeros((4, 5), bool))
    with pytest.raises(ValueError, match="object_masks"):
        encode_mask_video(np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="rgb"):
        palette_labels(np.zeros((4, 4), np.uint8))


def test_overlay_tints_masks_and_keeps_background():
    image = np.full((24, 32, 3), 100, np.uint8)
    obj, actor = _masks()
    out = overlay_masks(image, obj[0], actor[0], alpha=0.5, contours=False)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert tuple(out[0, 31]) == (100, 100, 100)            # untouched background
    assert tuple(out[14, 10]) == (178, 50, 50)             # object: half red
    assert tuple(out[5, 3]) == (50, 178, 50)               # actor: half green
    with_contours = overlay_masks(image, obj[0], actor[0])
    assert (with_contours != overlay_masks(image, obj[0], actor[0], contours=False)).any()
    video = overlay_masks(np.repeat(image[None], 3, 0), obj, actor)
    assert video.shape == (3, 24, 32, 3)
    with pytest.raises(ValueError, match="matching image"):
        overlay_masks(image, obj)


def test_overlay_accepts_strided_views():
    # Channels-first storage viewed as [T, H, W, 3] and masks viewed as [T, H, W]: neither is
    # C-contiguous (as from a permuted tensor); the result must equal the contiguous case.
    obj, actor = _masks()
    frames = np.full((3, 3, 24, 32), 100, np.uint8).transpose(1, 2, 3, 0)
    obj_view = np.ascontiguousarray(np.moveaxis(np.repeat(obj[:1], 3, 0), 0, -1)).transpose(2, 0, 1)
    assert not frames.flags.c_contiguous and not obj_view.flags.c_contiguous
    expected = overlay_masks(np.ascontiguousarray(frames), np.ascontiguousarray(obj_view),
                             np.repeat(actor[:1], 3, 0))
    out = overlay_masks(frames, obj_view, np.repeat(actor[:1], 3, 0))
    assert np.array_equal(out, expected)
    assert (out != overlay_masks(frames, obj_view, np.repeat(actor[:1], 3, 0), contours=False)).any()
    reversed_rows = overlay_masks(frames[:, ::-1], obj_view[:, ::-1])  # negative strides
    assert np.array_equal(reversed_rows, overlay_masks(np.ascontiguousarray(frames[:, ::-1]),
                                                       np.ascontiguousarray(obj_view[:, ::-1])))
