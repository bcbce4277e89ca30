"""Camera model (against OpenCV's projection) and depth decoding (REP 118 encodings)."""

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from mask2iv_ros.geometry import PinholeCamera, decode_depth, valid_depth

K = [600.0, 0.0, 319.5, 0.0, 610.0, 241.0, 0.0, 0.0, 1.0]


def test_from_k_accepts_the_camera_info_layout_and_a_matrix():
    flat = PinholeCamera.from_k(K, width=640, height=480)
    square = PinholeCamera.from_k(np.array(K).reshape(3, 3))
    assert (flat.fx, flat.fy, flat.cx, flat.cy) == (600.0, 610.0, 319.5, 241.0)
    assert (square.fx, square.fy, square.cx, square.cy) == (flat.fx, flat.fy, flat.cx, flat.cy)
    np.testing.assert_array_equal(flat.matrix, np.array(K).reshape(3, 3))


def test_projection_matches_opencv_and_back_projection_inverts_it():
    camera = PinholeCamera.from_k(K)
    rng = np.random.default_rng(0)
    points = np.column_stack([rng.uniform(-0.5, 0.5, 20), rng.uniform(-0.4, 0.4, 20), rng.uniform(0.3, 2.0, 20)])
    reference, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), camera.matrix, None)
    uv = camera.project(points)
    np.testing.assert_allclose(uv, reference.reshape(-1, 2), atol=1e-9)
    np.testing.assert_allclose(camera.back_project(uv, points[:, 2]), points, atol=1e-12)
    # The principal point looks straight down the optical axis (z forward).
    np.testing.assert_allclose(camera.rays([[319.5, 241.0]]), [[0.0, 0.0, 1.0]])


def test_distorted_camera_info_undistorts_pixels_before_making_rays():
    info = SimpleNamespace(k=K, d=[0.1, -0.05, 0.001, 0.002, 0.0], distortion_model="plumb_bob", width=640, height=480)
    camera = PinholeCamera.from_camera_info(info)
    points = np.array([[0.2, -0.1, 1.0], [-0.3, 0.25, 1.5]])
    reference, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), camera.matrix, np.array(info.d))
    uv = camera.project(points)
    np.testing.assert_allclose(uv, reference.reshape(-1, 2), atol=1e-9)
    np.testing.assert_allclose(camera.back_project(uv, points[:, 2]), points, atol=1e-5)
    # All-zero d (a rectified image) is the plain pinhole model.
    assert PinholeCamera.from_camera_info(SimpleNamespace(k=K, d=[0.0] * 5, distortion_model="plumb_bob",
                                                          width=640, height=480)).distortion == ()


@pytest.mark.parametrize(
    "k, match",
    [([600.0, 0, 320], "K: expected the 3x3"), ([0.0, 0, 320, 0, 600, 240, 0, 0, 1], "K.fx"),
     ([600.0, 2.0, 320, 0, 600, 240, 0, 0, 1], "skew"), ([600.0, 0, 320, 0, 600, 240, 0, 1, 1], r"K: expected \[\[fx")],
)
def test_bad_intrinsics_are_refused_naming_the_field(k, match):
    with pytest.raises(ValueError, match=match):
        PinholeCamera.from_k(k)


def test_camera_info_errors_name_the_message_field():
    uncalibrated = SimpleNamespace(k=[0.0] * 9, d=[], distortion_model="", width=640, height=480)
    with pytest.raises(ValueError, match=r"camera_info\.k"):
        PinholeCamera.from_camera_info(uncalibrated)
    fisheye = SimpleNamespace(k=K, d=[0.1, 0.0, 0.0, 0.0], distortion_model="equidistant", width=640, height=480)
    with pytest.raises(ValueError, match=r"camera_info\.distortion_model"):
        PinholeCamera.from_camera_info(fisheye)
    camera = PinholeCamera.from_camera_info(SimpleNamespace(k=K, d=[], distortion_model="", width=640, height=480))
    with pytest.raises(ValueError, match=r"depth: expected an image of the camera_info size \(480, 640\)"):
        camera.check_image_size(240, 320, "depth")


def test_16uc1_is_millimetres_with_zero_invalid():
    raw = np.array([[0, 1000], [1234, 65535]], np.uint16)
    metres = decode_depth(raw, "16UC1")
    assert metres.dtype == np.float32
    assert np.isnan(metres[0, 0])
    np.testing.assert_allclose(metres[~np.isnan(metres)], [1.0, 1.234, 65.535], rtol=1e-6)
    np.testing.assert_array_equal(decode_depth(raw), metres)  # uint16 means 16UC1


def test_32fc1_is_metres_with_zero_nan_inf_and_negative_invalid():
    raw = np.array([[0.0, np.nan, np.inf], [-np.inf, -1.0, 0.75]], np.float32)
    metres = decode_depth(raw, "32FC1")
    np.testing.assert_array_equal(valid_depth(metres), [[False, False, False], [False, False, True]])
    assert metres[1, 2] == np.float32(0.75)
    np.testing.assert_array_equal(np.isnan(decode_depth(raw)), np.isnan(metres))


@pytest.mark.parametrize(
    "raw, encoding, match",
    [(np.zeros((2, 2), np.float32), "16UC1", "expects uint16"), (np.zeros((2, 2), np.uint16), "32FC1", "expects float"),
     (np.zeros((2, 2), np.uint8), None, "dtype uint8"), (np.zeros((2, 2, 3), np.uint16), None, r"\[H, W\]"),
     (np.zeros((2, 2), np.uint16), "rgb8", r"depth\.encoding")],
)
def test_bad_depth_is_refused_naming_the_field(raw, encoding, match):
    with pytest.raises(ValueError, match=match):
        decode_depth(raw, encoding)
