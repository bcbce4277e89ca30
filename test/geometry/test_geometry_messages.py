"""ROS side: depth Image / CameraInfo messages in, InteractionGeometry messages out (rclpy
message classes, serialized with rclpy and read back with rosbags from msg/*.msg)."""

import math

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
from builtin_interfaces.msg import Time  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from mask2iv_ros.eval.bag_io import package_typestore  # noqa: E402
from mask2iv_ros.geometry import interaction_geometry  # noqa: E402
from mask2iv_ros.geometry.synthetic import metres_to_16uc1, push_scene  # noqa: E402
from mask2iv_ros.msg import InteractionGeometry  # noqa: E402
from mask2iv_ros.ros.depth_image import camera_from_camera_info, depth_image_to_metres  # noqa: E402
from mask2iv_ros.ros.geometry_messages import interaction_geometry_msg  # noqa: E402
from mask2iv_ros.ros.image_conversion import ImageConversionError  # noqa: E402


def _image(pixels: np.ndarray, encoding: str, bigendian: bool = False, pad: int = 0) -> Image:
    dtype = pixels.dtype.newbyteorder(">" if bigendian else "<")
    rows = np.ascontiguousarray(pixels.astype(dtype)).view(np.uint8).reshape(pixels.shape[0], -1)
    rows = np.concatenate([rows, np.zeros((rows.shape[0], pad), np.uint8)], axis=1)
    msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding, is_bigendian=int(bigendian),
                step=rows.shape[1])
    msg.data = rows.tobytes()
    return msg


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("pad", [0, 8])
def test_depth_images_of_both_encodings_decode_to_metres(bigendian, pad):
    metres = np.array([[0.5, 1.25, 0.0], [np.nan, 2.0, np.inf]], np.float32)
    decoded = depth_image_to_metres(_image(metres, "32FC1", bigendian, pad))
    np.testing.assert_array_equal(np.isnan(decoded), [[False, False, True], [True, False, True]])
    np.testing.assert_allclose(decoded[[0, 0, 1], [0, 1, 1]], [0.5, 1.25, 2.0])
    millimetres = np.array([[500, 1250, 0], [0, 2000, 0]], np.uint16)
    np.testing.assert_array_equal(np.isnan(depth_image_to_metres(_image(millimetres, "16UC1", bigendian, pad))),
                                  np.isnan(decoded))


def test_bad_depth_messages_name_the_field():
    with pytest.raises(ImageConversionError, match=r"depth\.encoding: expected a depth encoding"):
        depth_image_to_metres(_image(np.zeros((2, 2), np.uint8), "mono8"))
    short = _image(np.zeros((2, 2), np.float32), "32FC1")
    short.step = 4
    with pytest.raises(ImageConversionError, match=r"goal\.depth\.step"):
        depth_image_to_metres(short, "goal.depth")


def test_camera_info_message_gives_the_camera():
    info = CameraInfo(width=640, height=480, distortion_model="plumb_bob")
    info.k = [600.0, 0.0, 319.5, 0.0, 600.0, 239.5, 0.0, 0.0, 1.0]
    info.d = [0.0] * 5
    camera = camera_from_camera_info(info)
    assert (camera.fx, camera.cy, camera.width, camera.height, camera.distortion) == (600.0, 239.5, 640, 480, ())
    with pytest.raises(ValueError, match=r"goal\.camera_info\.k"):
        camera_from_camera_info(CameraInfo(), "goal.camera_info")


def test_interaction_geometry_message_carries_paths_flags_and_stamps():
    scene = push_scene(frames=5, contact_frame=2)
    objects = scene.object_masks.copy()
    objects[3] = False  # one frame without an object: NaN pose, flag false
    geometry = interaction_geometry(scene.actor_masks, objects, metres_to_16uc1(scene.depth_m), scene.camera)
    header = Header(stamp=Time(sec=100, nanosec=900_000_000), frame_id="camera_color_optical_frame")
    msg = interaction_geometry_msg(geometry, header, fps=4.0, hypothesis_index=2)
    msg = deserialize_message(serialize_message(msg), InteractionGeometry)  # survives the wire

    assert msg.hypothesis_index == 2 and msg.contact_frame == 2 and msg.contact_point_valid
    assert list(msg.object_path_valid) == [True, True, True, False, True]
    positions = np.array([[p.pose.position.x, p.pose.position.y, p.pose.position.z] for p in msg.object_path.poses])
    np.testing.assert_allclose(positions[[0, 1, 2, 4]], geometry.object_path[[0, 1, 2, 4]])
    assert np.isnan(positions[3]).all()
    assert [(p.header.stamp.sec, p.header.stamp.nanosec) for p in msg.object_path.poses] == [
        (100, 900_000_000), (101, 150_000_000), (101, 400_000_000), (101, 650_000_000), (101, 900_000_000)]
    assert {p.header.frame_id for p in msg.actor_path.poses} == {"camera_color_optical_frame"}
    assert msg.object_path.header.frame_id == "camera_color_optical_frame"
    assert all(p.pose.orientation.w == 1.0 for p in msg.object_path.poses)
    assert msg.placement_frame == 4 and msg.placement_point_valid
    assert msg.placement_point.z == pytest.approx(geometry.object_path[4, 2])
    np.testing.assert_allclose(msg.support_plane, scene.plane, atol=2e-3)
    assert msg.support_plane_valid and 0.9 < msg.support_plane_inlier_ratio <= 1.0
    assert msg.support_plane_rmse < 0.001

    # The same bytes read with rosbags and the package's .msg files (how bags of it are analysed).
    typestore = package_typestore()
    read = typestore.deserialize_cdr(serialize_message(msg), "mask2iv_ros/msg/InteractionGeometry")
    assert read.contact_frame == 2 and list(read.object_path_valid) == [True, True, True, False, True]
    assert math.isnan(read.object_path.poses[3].pose.position.x)


def test_without_depth_everything_is_flagged_invalid_and_nan():
    scene = push_scene(frames=3, contact_frame=1)
    geometry = interaction_geometry(scene.actor_masks, scene.object_masks, np.zeros((480, 640), np.uint16), scene.camera)
    msg = interaction_geometry_msg(geometry, Header(frame_id="camera"), fps=5.0)
    assert not msg.support_plane_valid and np.isnan(msg.support_plane).all()
    assert not any(msg.object_path_valid) and not msg.placement_point_valid and msg.placement_frame == -1
    assert math.isnan(msg.placement_point.x) and math.isnan(msg.contact_point.z)
    assert msg.contact_frame == 1 and not msg.contact_point_valid
    with pytest.raises(ValueError, match="fps"):
        interaction_geometry_msg(geometry, Header(), fps=0.0)
