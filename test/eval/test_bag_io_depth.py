"""Input bags with depth + camera_info (written with rosbags, read back from the bag's bytes):
the depth in both encodings and the intrinsics survive, stamped with their image."""

import numpy as np
import pytest

from mask2iv_ros.eval.bag_io import (CAMERA_INFO_TOPIC, DEPTH_TOPIC, IMAGE_TOPIC, BagRequest,
                                     package_typestore,
                                     read_bag, read_input_bag, write_input_bag)
from mask2iv_ros.geometry.synthetic import default_camera, metres_to_16uc1, plane_depth, tabletop_plane
from mask2iv_ros.ros.depth_image import camera_from_camera_info, depth_image_to_metres


def _request(depth, camera):
    image = np.zeros((48, 64, 3), np.uint8)
    mask = np.zeros((48, 64), bool)
    mask[20:30, 20:30] = True
    return BagRequest(image=image, object_mask=mask, prompt="push", depth=depth, camera=camera)


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1"])
def test_depth_and_camera_info_round_trip(tmp_path, encoding):
    camera = default_camera(48, 64)
    metres = plane_depth(camera, tabletop_plane(0.6, 50.0), 48, 64)
    depth = metres if encoding == "32FC1" else metres_to_16uc1(metres)
    bag = write_input_bag(tmp_path / "bag", [_request(depth, camera), _request(depth, camera)])
    messages = read_bag(bag)
    assert len(messages[DEPTH_TOPIC]) == len(messages[CAMERA_INFO_TOPIC]) == 2
    depth_msg, info = messages[DEPTH_TOPIC][0], messages[CAMERA_INFO_TOPIC][0]
    assert depth_msg.encoding == encoding and depth_msg.header == messages[IMAGE_TOPIC][0].header
    decoded = depth_image_to_metres(depth_msg)
    np.testing.assert_allclose(decoded, metres, atol=0 if encoding == "32FC1" else 5e-4)
    read_camera = camera_from_camera_info(info)
    np.testing.assert_allclose(read_camera.matrix, camera.matrix)
    assert (read_camera.width, read_camera.height) == (64, 48)
    # depth and camera_info join their image's input set (one request per image)
    sets = [s for s in read_input_bag(bag, package_typestore())[0] if s.is_request]
    assert [sorted(m.topic for m in s.messages if m.topic.startswith("/camera")) for s in sets] == \
        [[CAMERA_INFO_TOPIC, DEPTH_TOPIC, IMAGE_TOPIC]] * 2


def test_depth_needs_its_camera_and_the_image_grid(tmp_path):
    camera = default_camera(48, 64)
    with pytest.raises(ValueError, match=r"requests\[0\]: expected depth and camera together"):
        write_input_bag(tmp_path / "a", [_request(np.ones((48, 64), np.float32), None)])
    with pytest.raises(ValueError, match=r"requests\[0\]\.depth: expected the image's pixel grid"):
        write_input_bag(tmp_path / "b", [_request(np.ones((40, 64), np.float32), camera)])
