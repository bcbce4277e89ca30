"""Geometry of several hypotheses of one input: one support plane (around the input object
mask), every hypothesis lifted onto it; exact synthetic push scene."""

import numpy as np
import pytest

from mask2iv_ros.geometry.hypotheses import hypotheses_geometry, shared_support_plane
from mask2iv_ros.geometry.synthetic import metres_to_16uc1, push_scene


@pytest.fixture(scope="module")
def scene():
    return push_scene()


def test_every_hypothesis_is_lifted_onto_one_plane(scene):
    truth = (scene.actor_masks, scene.object_masks)
    # a second hypothesis: the object stays where it is (the first frame repeated)
    still = (scene.actor_masks, np.repeat(scene.object_masks[:1], len(scene.object_masks), axis=0))
    geometries = hypotheses_geometry([truth, still], metres_to_16uc1(scene.depth_m),
                                     scene.camera.matrix.ravel(), scene.object_masks[0],
                                     scene.actor_masks[0])
    assert len(geometries) == 2
    assert geometries[0].support_plane is geometries[1].support_plane
    np.testing.assert_allclose(geometries[0].support_plane.coefficients, scene.plane, atol=2e-3)
    errors_mm = np.linalg.norm(geometries[0].object_path - scene.object_path, axis=1) * 1000
    assert geometries[0].object_path_valid.all() and errors_mm.max() < 2.0
    # the still hypothesis ends where the object starts; the true one 4 pushes further
    np.testing.assert_allclose(geometries[1].placement_point, scene.object_path[0], atol=2e-3)
    moved = np.linalg.norm(geometries[0].placement_point - geometries[1].placement_point)
    assert moved == pytest.approx(4 * np.hypot(0.02, 0.01), abs=0.002)


def test_input_masks_must_be_in_the_depth_grid(scene):
    with pytest.raises(ValueError, match=r"object_mask: expected the depth image's pixel grid"):
        shared_support_plane(scene.depth_m, scene.camera, scene.object_masks[0][:-1])
    with pytest.raises(ValueError, match=r"actor_mask: expected the depth image's pixel grid"):
        shared_support_plane(scene.depth_m, scene.camera, scene.object_masks[0],
                             scene.actor_masks[0][:, :-1])
