"""Support-plane RANSAC: exact, noisy and outlier-ridden points; fitting around an object mask in
rendered depth of a tilted (pitched and rolled) table."""

import numpy as np
import pytest

from mask2iv_ros.geometry import SupportPlane, fit_plane_ransac, fit_support_plane, support_ring
from mask2iv_ros.geometry.synthetic import default_camera, metres_to_16uc1, plane_axes, plane_depth, tabletop_plane
from mask2iv_ros.geometry.depth import decode_depth


def _angle_deg(a, b):
    return np.degrees(np.arccos(np.clip(abs(np.dot(a, b)), 0.0, 1.0)))


def _points_on(plane, count, rng, spread=0.3):
    axes = plane_axes(plane)
    foot = -plane[3] * plane[:3]
    centre = foot + axes[:, 1] * 0.9  # some way in front of the camera
    offsets = rng.uniform(-spread, spread, (count, 2))
    return centre + offsets[:, :1] * axes[:, 0] + offsets[:, 1:] * axes[:, 1]


def test_exact_points_give_the_plane_with_the_normal_toward_the_camera():
    plane = tabletop_plane(0.6, 50.0, roll_deg=12.0)
    fitted = fit_plane_ransac(_points_on(plane, 500, np.random.default_rng(0)))
    assert fitted.valid and fitted.reason == ""
    np.testing.assert_allclose(fitted.coefficients, plane, atol=1e-9)
    assert fitted.inliers == fitted.points == 500
    assert fitted.signed_distance(np.zeros((1, 3)))[0] == pytest.approx(0.6)  # camera above the table


def test_noise_and_outliers_stay_within_tolerance_and_are_deterministic():
    plane = tabletop_plane(0.55, 40.0, roll_deg=-8.0)
    rng = np.random.default_rng(1)
    inliers = _points_on(plane, 700, rng) + rng.normal(0.0, 0.002, (700, 3))  # 2 mm noise
    outliers = rng.uniform([-0.4, -0.2, 0.3], [0.4, 0.5, 1.4], (300, 3))  # 30 % clutter
    points = rng.permutation(np.concatenate([inliers, outliers]))
    fitted = fit_plane_ransac(points, threshold_m=0.008, seed=3)
    assert fitted.valid
    assert _angle_deg(fitted.normal, plane[:3]) < 0.5
    assert abs(fitted.offset - plane[3]) < 0.002
    assert 680 <= fitted.inliers <= 760  # the inliers, plus the few clutter points near the plane
    assert fitted.rmse_m < 0.004
    again = fit_plane_ransac(points, threshold_m=0.008, seed=3)
    np.testing.assert_array_equal(again.coefficients, fitted.coefficients)
    other_seed = fit_plane_ransac(points, threshold_m=0.008, seed=4)
    assert _angle_deg(other_seed.normal, plane[:3]) < 0.5


def test_too_few_points_or_no_dominant_plane_is_not_valid():
    plane = tabletop_plane(0.6, 50.0)
    few = fit_plane_ransac(_points_on(plane, 20, np.random.default_rng(0)))
    assert not few.valid and "20 valid depth points" in few.reason and np.isnan(few.coefficients).all()
    clutter = fit_plane_ransac(np.random.default_rng(0).uniform(-1, 1, (400, 3)) + [0, 0, 2], threshold_m=0.005)
    assert not clutter.valid and "within 0.005 m" in clutter.reason
    points, valid = clutter.intersect_rays(np.array([[0.0, 0.0, 1.0]]))
    assert not valid[0] and np.isnan(points).all()


def test_a_plane_through_the_camera_centre_is_not_valid():
    rng = np.random.default_rng(0)
    edge_on = np.column_stack([rng.uniform(-1, 1, 200), np.zeros(200), rng.uniform(0.5, 2, 200)])  # y = 0
    fitted = fit_plane_ransac(edge_on)
    assert not fitted.valid and "edge-on" in fitted.reason


def test_ray_intersection_rejects_parallel_and_backward_rays():
    plane = SupportPlane(tabletop_plane(0.6, 0.0), True)  # horizontal camera: the table is y = 0.6
    points, valid = plane.intersect_rays(np.array([[0.0, 0.5, 1.0], [0.0, 0.0, 1.0], [0.0, -0.5, 1.0]]))
    np.testing.assert_allclose(points[0], [0.0, 0.6, 1.2])
    np.testing.assert_array_equal(valid, [True, False, False])  # along the horizon; above it (behind)


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_support_plane_around_an_object_in_rendered_depth(encoding):
    camera = default_camera()
    plane = tabletop_plane(0.62, 48.0, roll_deg=10.0)
    depth_m = plane_depth(camera, plane, 480, 640)
    raw = metres_to_16uc1(depth_m) if encoding == "16UC1" else depth_m
    object_mask = np.zeros((480, 640), bool)
    object_mask[200:260, 280:350] = True
    clutter = np.zeros_like(object_mask)
    clutter[180:280, 340:420] = True  # something else standing next to the object, 15 cm closer
    decoded = decode_depth(raw)
    decoded[clutter] -= 0.15
    fitted = fit_support_plane(decoded, camera, object_mask, seed=0)
    assert fitted.valid
    assert _angle_deg(fitted.normal, plane[:3]) < 0.3
    assert abs(fitted.offset - plane[3]) < 0.002
    ring = support_ring(object_mask, 3, 48)
    np.testing.assert_array_equal(fitted.ring, ring)  # default ring: 3 px to a tenth of 480 px
    assert fitted.points == 4000  # the seeded subset of the ring's valid pixels
    nothing = fit_support_plane(np.full((480, 640), np.nan, np.float32), camera, object_mask)
    assert not nothing.valid and "0 valid depth points" in nothing.reason
    empty = fit_support_plane(decoded, camera, np.zeros_like(object_mask))
    assert not empty.valid and "object mask is empty" in empty.reason
