"""The node's vectorised overlay against the reference drawing (masks.overlay_masks, OpenCV contours)."""

import numpy as np

from mask2iv_ros.masks import DEFAULT_PALETTE, overlay_masks
from mask2iv_ros.ros.overlay import outline, overlay_frames


def moving_shapes(frames=5, height=40, width=56):
    yy, xx = np.mgrid[:height, :width]
    objects = np.stack([(yy - 12 - t) ** 2 + (xx - 20 - 2 * t) ** 2 < 36 for t in range(frames)])
    actors = np.stack([(abs(yy - 30) < 5) & (abs(xx - 8 - 3 * t) < 6) for t in range(frames)]) & ~objects
    actors[-1, :, -3:] = True  # touching the image border
    return actors, objects


def test_same_pixels_as_the_reference_drawing():
    image = np.random.default_rng(1).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    actors, objects = moving_shapes()
    reference = overlay_masks(np.broadcast_to(image, objects.shape + (3,)).copy(), object_mask=objects,
                              actor_mask=actors, palette=DEFAULT_PALETTE)
    np.testing.assert_array_equal(overlay_frames(image, actors, objects, DEFAULT_PALETTE), reference)


def test_outline_is_the_mask_boundary():
    mask = np.zeros((1, 7, 7), bool)
    mask[0, 1:6, 1:6] = True
    edge = outline(mask)[0]
    assert edge.sum() == 16 and not edge[2:5, 2:5].any() and edge[1, 1] and edge[5, 3]
    full = np.ones((1, 3, 3), bool)  # everything set: only the image border is an edge
    assert outline(full)[0].sum() == 8 and not outline(full)[0][1, 1]
