"""interaction_geometry on exact synthetic data: a finger pushes a box across a table seen from
above by a pinhole camera (mask2iv_ros.geometry.synthetic renders depth and masks by ray casting),
so the object path, contact and actor tip are known in metres."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from mask2iv_ros.geometry import interaction_geometry
from mask2iv_ros.geometry.synthetic import (
    default_camera, metres_to_16uc1, plane_axes, push_scene, tabletop_plane)


@pytest.fixture(scope="module")
def scene():
    return push_scene()


def _errors_mm(points, truth):
    return np.linalg.norm(points - truth, axis=1) * 1000.0


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1"])
def test_object_path_and_placement_match_the_known_path_within_a_few_mm(scene, encoding):
    depth = scene.depth_m if encoding == "32FC1" else metres_to_16uc1(scene.depth_m)
    geometry = interaction_geometry(scene.actor_masks, scene.object_masks, depth, scene.camera.matrix.ravel(),
                                    depth_encoding=encoding)
    assert geometry.support_plane.valid
    np.testing.assert_allclose(geometry.support_plane.coefficients, scene.plane, atol=2e-3)
    assert geometry.object_path_valid.all()
    assert _errors_mm(geometry.object_path, scene.object_path).max() < 2.0
    # The box really moves: 4 pushes of (2 cm right, 1 cm away) after contact.
    travelled = np.linalg.norm(geometry.object_path[-1] - geometry.object_path[0])
    assert travelled == pytest.approx(4 * np.hypot(0.02, 0.01), abs=0.002)
    assert geometry.placement_point_valid and geometry.placement_frame == 7
    np.testing.assert_array_equal(geometry.placement_point, geometry.object_path[-1])


def test_contact_frame_and_point(scene):
    geometry = interaction_geometry(scene.actor_masks, scene.object_masks, scene.depth_m, scene.camera)
    assert geometry.contact_frame == scene.contact_frame == 3
    assert geometry.contact_point_valid
    # Where the finger meets the box: its left face (right = -3 cm in box coordinates), across the
    # finger's width (away within +-1 cm), between the table and the box top (up in [0, 5] cm).
    box = scene.object_boxes[0]
    local = (geometry.contact_point - box.ground) @ plane_axes(scene.plane)
    nearest = np.clip(local, [-0.03, -0.01, 0.0], [-0.03, 0.01, 0.05])
    assert np.linalg.norm(local - nearest) < 0.005


def test_actor_tip_path_is_exact_while_the_current_depth_shows_the_surface_under_it(scene):
    geometry = interaction_geometry(scene.actor_masks, scene.object_masks, scene.depth_m, scene.camera)
    assert geometry.actor_path_valid.all()
    upto_contact = slice(0, scene.contact_frame + 1)
    assert _errors_mm(geometry.actor_path[upto_contact], scene.actor_path[upto_contact]).max() < 5.0
    # Pushing, the tip is over the box's old place: the current depth sees the box's front face there,
    # the first surface along the ray (documented), in front of the tip.
    pushing = slice(scene.contact_frame + 1, 7)
    assert (geometry.actor_path[pushing, 2] < scene.actor_path[pushing, 2] - 0.02).all()


def test_missing_depth_makes_every_lifted_point_invalid(scene):
    depth = metres_to_16uc1(scene.depth_m)
    depth[:] = 0  # no measurement anywhere
    geometry = interaction_geometry(scene.actor_masks, scene.object_masks, depth, scene.camera)
    assert not geometry.support_plane.valid and "0 valid depth points" in geometry.support_plane.reason
    assert not geometry.object_path_valid.any() and np.isnan(geometry.object_path).all()
    assert not geometry.placement_point_valid and geometry.placement_frame == -1
    assert geometry.contact_frame == 3 and not geometry.contact_point_valid  # masks alone find the frame
    assert not geometry.actor_path_valid.any()


def test_empty_masks_and_rays_that_miss_the_plane_are_flagged_per_frame():
    camera = default_camera()
    plane = tabletop_plane(0.6, 10.0)  # nearly horizontal view: the horizon is at row ~134
    scene = push_scene(camera, plane, start_pixel=(320.0, 400.0), frames=6, contact_frame=2,
                       push_per_frame=(0.0, 0.05))
    objects, actors = scene.object_masks.copy(), scene.actor_masks.copy()
    objects[3] = False  # the object disappears from view (e.g. occluded)
    objects[4] = False
    objects[4, 40:60, 300:340] = True  # a mask above the horizon: its ray meets the plane behind the camera
    actors[1] = False
    geometry = interaction_geometry(actors, objects, scene.depth_m, camera)
    np.testing.assert_array_equal(geometry.object_path_valid, [True, True, True, False, False, True])
    assert np.isnan(geometry.object_path[[3, 4]]).all()
    assert geometry.placement_frame == 5
    assert _errors_mm(geometry.object_path[[0, 1, 2, 5]], scene.object_path[[0, 1, 2, 5]]).max() < 3.0
    assert not geometry.actor_path_valid[1] and geometry.actor_path_valid[[0, 2]].all()
    objects[5] = False  # the last valid point is the placement
    assert interaction_geometry(actors, objects, scene.depth_m, camera).placement_frame == 2


def test_points_on_a_rolled_table_lie_on_it_and_reproject_to_the_bottom_centre():
    scene = push_scene(plane=tabletop_plane(0.7, 55.0, roll_deg=15.0))
    geometry = interaction_geometry(scene.actor_masks, scene.object_masks, scene.depth_m, scene.camera)
    assert geometry.object_path_valid.all()
    distance = geometry.object_path @ scene.plane[:3] + scene.plane[3]
    assert np.abs(distance).max() < 0.001
    np.testing.assert_allclose(scene.camera.project(geometry.object_path), geometry.object_pixels, atol=0.05)
    # Rolled, the front edge is not level in the image: the silhouette's lowest point is the footprint's
    # lowest corner, and the lowest mask row holds the few pixels of the edge next to it (6-16 px
    # here, a 3.5 degree slope), so the path follows that corner within about a centimetre, and the
    # displacements are those of the box within a few mm.
    corners = np.stack([box.corners(scene.plane)[0::2] for box in scene.object_boxes])  # [T, 4 bottom corners, 3]
    nearest_corner = np.linalg.norm(corners - geometry.object_path[:, None], axis=2).min(axis=1)
    assert nearest_corner.max() < 0.012
    assert _errors_mm(geometry.object_path - geometry.object_path[0], scene.object_path - scene.object_path[0]).max() < 6.0


def test_a_shared_plane_and_camera_info_inputs(scene):
    first = interaction_geometry(scene.actor_masks, scene.object_masks, scene.depth_m, scene.camera, seed=1)
    info = SimpleNamespace(k=list(scene.camera.matrix.ravel()), d=[0.0] * 5, distortion_model="plumb_bob",
                           width=640, height=480)
    shared = interaction_geometry(scene.actor_masks[::-1], scene.object_masks[::-1], scene.depth_m, info,
                                  plane=first.support_plane)
    assert shared.support_plane is first.support_plane
    np.testing.assert_allclose(shared.object_path[::-1], first.object_path)


def test_no_actor_means_no_contact_and_no_actor_path(scene):
    geometry = interaction_geometry(None, scene.object_masks, scene.depth_m, scene.camera)
    assert geometry.contact_frame == -1 and not geometry.contact_point_valid
    assert not geometry.actor_path_valid.any()
    assert geometry.object_path_valid.all()


def test_to_dict_is_json_with_none_for_invalid_points(scene):
    objects = scene.object_masks.copy()
    objects[2] = False
    data = json.loads(json.dumps(interaction_geometry(scene.actor_masks, objects, scene.depth_m, scene.camera).to_dict()))
    assert data["object_path"][2] is None and len(data["object_path"][0]) == 3
    assert data["contact_frame"] == 3 and data["support_plane"]["valid"] is True


def test_masks_outside_the_depth_grid_are_refused_naming_the_field(scene):
    with pytest.raises(ValueError, match=r"object_masks: expected masks in the depth image's pixel grid \(480, 640\)"):
        interaction_geometry(scene.actor_masks, scene.object_masks[:, :, :600], scene.depth_m, scene.camera)
    with pytest.raises(ValueError, match="actor_masks: expected masks in the depth image's pixel grid"):
        interaction_geometry(scene.actor_masks[:, 1:], scene.object_masks, scene.depth_m, scene.camera)
    with pytest.raises(ValueError, match="actor_masks: expected 8 frames"):
        interaction_geometry(scene.actor_masks[:3], scene.object_masks, scene.depth_m, scene.camera)
    with pytest.raises(ValueError, match=r"depth: expected an image of the camera_info size \(480, 640\)"):
        interaction_geometry(scene.actor_masks[:, :240, :320], scene.object_masks[:, :240, :320],
                             scene.depth_m[:240, :320], scene.camera)
