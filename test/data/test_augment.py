import numpy as np
import pytest
import torch

from mask2iv_ros.data.augment import (contact_loss_weights, contact_map, dilate, downsample_weights, erode,
                                      random_dilate_erode)


def test_dilate_and_erode_hand_computed():
    dot = np.zeros((7, 7), bool)
    dot[3, 3] = True
    grown = dilate(dot, 3)
    expected = np.zeros((7, 7), bool)
    expected[2:5, 2:5] = True
    np.testing.assert_array_equal(grown, expected)
    np.testing.assert_array_equal(dilate(dot, 5), np.pad(np.ones((5, 5), bool), 1))
    np.testing.assert_array_equal(erode(expected, 3), dot)
    # pixels outside the image count as background: a mask touching the border shrinks too
    full = np.ones((4, 4), bool)
    inner = np.zeros((4, 4), bool)
    inner[1:3, 1:3] = True
    np.testing.assert_array_equal(erode(full, 3), inner)


def test_random_dilate_erode_is_consistent_across_masks():
    actor = np.zeros((3, 9, 9), bool)
    actor[:, 4, 4] = True
    obj = np.zeros((3, 9, 9), bool)
    obj[:, 2:7, 2:7] = True
    same = random_dilate_erode((actor, obj), p=0.0, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(same[0], actor)
    np.testing.assert_array_equal(same[1], obj)
    seen = set()
    for seed in range(40):
        a, o = random_dilate_erode((actor, obj), p=1.0, kernel_sizes=(3, 5), rng=np.random.default_rng(seed))
        grew = a.sum() > actor.sum()
        # one operation for both masks: both grow (dilation) or the object shrinks and the
        # single-pixel actor vanishes (erosion); every frame is treated alike
        assert grew == (o.sum() > obj.sum())
        assert (a == a[0]).all() and (o == o[0]).all()
        seen.add((grew, int(o[0].sum())))
    assert seen == {(True, 49), (True, 81), (False, 9), (False, 1)}  # dilate/erode x k=3/5


def test_random_dilate_erode_probability():
    obj = np.zeros((1, 9, 9), bool)
    obj[:, 3:6, 3:6] = True
    changed = sum((random_dilate_erode(obj, p=0.2, rng=np.random.default_rng(s)) != obj).any() for s in range(500))
    assert 70 < changed < 130  # about 20 % of 500


def test_contact_map_eq1_hand_computed():
    actor = np.zeros((4, 8), bool)
    actor[:, :4] = True
    obj = np.zeros((4, 8), bool)
    obj[:, 4:] = True
    contact = contact_map(actor, obj, kernel_size=3)
    expected = np.zeros((4, 8), bool)
    expected[:, 3:5] = True  # the actor column next to the object and the object column next to the actor
    np.testing.assert_array_equal(contact, expected)
    # a one-pixel gap: a 3x3 dilation just reaches across only from one side...
    gap_obj = np.zeros((4, 8), bool)
    gap_obj[:, 5:] = True
    assert not contact_map(actor, gap_obj, 3).any()
    # ...a 5x5 one does
    wide = contact_map(actor, gap_obj, 5)
    assert wide[:, 3].all() and wide[:, 5].all() and not wide[:, 4].any()


def test_loss_weights_eq2_and_downsampling():
    contact = np.zeros((4, 8), bool)
    contact[:, 3:5] = True
    w = contact_loss_weights(contact, lam=5)
    assert w.dtype == np.float32 and set(np.unique(w)) == {1.0, 5.0}
    assert (w[:, 3:5] == 5).all() and (w[:, :3] == 1).all()
    wt = contact_loss_weights(torch.from_numpy(contact), lam=2.0)
    assert torch.equal(wt, torch.where(torch.from_numpy(contact), 2.0, 1.0))
    pooled = downsample_weights(w, factor=2, mode="max")
    assert pooled.shape == (2, 4)
    np.testing.assert_array_equal(pooled.numpy(), [[1, 5, 5, 1], [1, 5, 5, 1]])
    area = downsample_weights(w, factor=2, mode="area")
    np.testing.assert_allclose(area.numpy(), [[1, 3, 3, 1], [1, 3, 3, 1]])
    video = torch.from_numpy(np.stack([w, w]))  # [T, H, W]
    assert downsample_weights(video, 2).shape == (2, 2, 4)


def test_bad_arguments_are_named():
    m = np.zeros((4, 4), bool)
    with pytest.raises(ValueError, match="kernel_size"):
        contact_map(m, m, kernel_size=4)
    with pytest.raises(ValueError, match="object_mask"):
        contact_map(m, np.zeros((4, 5), bool))
    with pytest.raises(ValueError, match="factor"):
        downsample_weights(np.ones((4, 6)), factor=4)
    with pytest.raises(ValueError, match="p:"):
        random_dilate_erode(m, p=1.5)
