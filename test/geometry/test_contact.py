"""Contact frame and region on hand-made masks."""

import numpy as np
import pytest

from mask2iv_ros.geometry import contact_frame, contact_region


def _approach(gaps):
    """An actor bar moving right toward a fixed object box: `gaps` = empty columns between them."""
    frames = len(gaps)
    actor = np.zeros((frames, 20, 30), bool)
    obj = np.zeros((frames, 20, 30), bool)
    obj[:, 8:14, 18:24] = True
    for index, gap in enumerate(gaps):
        right = 18 - gap  # first column after the actor
        actor[index, 5:15, right - 4:right] = True
    return actor, obj


def test_first_frame_within_dilate_px_is_the_contact_frame():
    actor, obj = _approach([9, 6, 3, 2, 0, 0])
    assert contact_frame(actor, obj, dilate_px=3) == 3  # gap 2: object pixel 3 px from the actor
    assert contact_frame(actor, obj, dilate_px=4) == 2  # gap 3 counts once the radius covers it
    assert contact_frame(actor, obj, dilate_px=1) == 4  # flush masks (object wins the shared pixels)
    assert contact_frame(actor, obj, dilate_px=0) == -1  # masks never overlap


def test_no_contact_without_actor_or_object():
    actor, obj = _approach([0, 0, 0])
    assert contact_frame(np.zeros_like(actor), obj) == -1
    assert contact_frame(actor, np.zeros_like(obj)) == -1
    actor, obj = _approach([10, 10])
    assert contact_frame(actor, obj) == -1


def test_contact_region_is_the_object_pixels_next_to_the_actor():
    actor, obj = _approach([0])
    region = contact_region(actor[0], obj[0], dilate_px=2)
    rows, cols = np.nonzero(region)
    assert set(cols) == {18, 19}  # the object's two columns within 2 px of the actor
    assert set(rows) == set(range(8, 14))
    assert not (region & ~obj[0]).any()


def test_shape_errors_name_the_argument():
    actor, obj = _approach([0, 1])
    with pytest.raises(ValueError, match="actor_masks: expected shape"):
        contact_frame(actor[:1], obj)
    with pytest.raises(ValueError, match="object_masks: expected a bool mask video"):
        contact_frame(actor[0], obj[0])
    with pytest.raises(ValueError, match="dilate_px"):
        contact_region(actor[0], obj[0], -1)
