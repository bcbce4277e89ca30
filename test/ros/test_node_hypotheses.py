"""Several hypotheses per goal with their agreement, and the 3D interaction geometry of each, from
a goal's (or a synchronized topic set's) depth + camera_info: a known table plane seen by a
pinhole camera (mask2iv_ros.geometry.synthetic)."""

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python client) is not installed")

from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from ros_test_helpers import GatedPipeline, wait_for  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import Header, String  # noqa: E402

from mask2iv_ros.action import Imagine  # noqa: E402
from mask2iv_ros.geometry.hypotheses import hypotheses_geometry  # noqa: E402
from mask2iv_ros.geometry.synthetic import default_camera, metres_to_16uc1, plane_depth, tabletop_plane  # noqa: E402
from mask2iv_ros.msg import ImaginedRollout, InteractionGeometry, MaskTrajectory  # noqa: E402
from mask2iv_ros.ros.depth_image import camera_info_msg, depth_to_image_msg  # noqa: E402
from mask2iv_ros.ros.image_conversion import image_msg_to_mask, mask_to_image_msg, rgb_to_image_msg  # noqa: E402
from mask2iv_ros.ros.planner_client import hypotheses  # noqa: E402

# 32 x 64: the tiny model's 32 x 48 grid sees the centre columns 8..55 (imagined_region), so the
# masks the geometry is lifted from must be pasted back into the camera grid first.
HEIGHT, WIDTH = 32, 64
CAMERA = default_camera(HEIGHT, WIDTH)
PLANE = tabletop_plane(0.6, 60.0)
DEPTH_MM = metres_to_16uc1(plane_depth(CAMERA, PLANE, HEIGHT, WIDTH))


def scene():
    image = np.random.default_rng(3).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    object_mask = np.zeros((HEIGHT, WIDTH), bool)
    object_mask[12:20, 26:36] = True
    return image, object_mask


def object_masks(rollout) -> np.ndarray:
    return np.stack([image_msg_to_mask(m) for m in rollout.mask_trajectory.object_masks])


def actor_masks(rollout) -> np.ndarray:
    return np.stack([image_msg_to_mask(m) for m in rollout.mask_trajectory.actor_masks])


def check_geometry(geometry, rollouts):
    """One message per hypothesis, on the known plane, each path point valid where its mask is set."""
    assert [g.hypothesis_index for g in geometry] == list(range(len(rollouts)))
    for message, rollout in zip(geometry, rollouts):
        assert message.support_plane_valid
        np.testing.assert_allclose(message.support_plane, PLANE, atol=3e-3)
        assert len(message.object_path.poses) == len(message.object_path_valid) == rollout.num_frames
        visible = object_masks(rollout).any(axis=(1, 2))
        assert list(message.object_path_valid) == list(visible)
        for pose, valid in zip(message.object_path.poses, message.object_path_valid):
            point = np.array([pose.pose.position.x, pose.pose.position.y, pose.pose.position.z])
            if valid:   # on the true table plane (mm), in front of the camera
                assert abs(PLANE[:3] @ point + PLANE[3]) < 5e-3 and point[2] > 0
            else:
                assert np.isnan(point).all()
        assert message.header.frame_id == rollout.header.frame_id


def test_goal_with_three_samples_and_depth_gives_ranked_hypotheses_with_geometry(start_node):
    h = start_node()
    geometry_topic = h.subscribe(InteractionGeometry, "imagination/geometry")
    image, object_mask = scene()
    goal = h.goal(image=image, object_mask=object_mask, seed=11, num_samples=3)
    goal.depth = depth_to_image_msg(DEPTH_MM, goal.image.header)
    goal.camera_info = camera_info_msg(CAMERA, goal.image.header)
    result = h.result(h.send(goal), timeout_s=60.0)
    assert result.status == Imagine.Result.STATUS_SUCCEEDED, result.error

    ranked = hypotheses(result)
    assert len(ranked) == 3 and len(result.other_hypotheses) == 2
    assert sorted(r.seed for r in ranked) == [11, 12, 13]
    assert [r.hypothesis_index for r in ranked] == [0, 1, 2] and {r.num_hypotheses for r in ranked} == {3}
    assert list(result.hypothesis_scores) == pytest.approx([r.hypothesis_score for r in ranked])
    assert list(result.hypothesis_scores) == sorted(result.hypothesis_scores, reverse=True)
    assert 0.0 <= result.agreement <= 1.0
    assert result.agreement == pytest.approx(np.mean(result.hypothesis_scores), abs=1e-6)
    assert result.ranking == "medoid_object_iou" and {r.ranking for r in ranked} == {"medoid_object_iou"}
    # the video only for the first-ranked hypothesis; masks on the camera grid
    assert len(result.rollout.video_frames) == result.rollout.num_frames
    assert all(len(r.video_frames) == 0 for r in result.other_hypotheses)
    assert object_masks(result.rollout).shape == (result.rollout.num_frames, HEIGHT, WIDTH)
    # the agreement is the mean pairwise object-mask IoU over frames of what the result carries
    masks = [object_masks(r) for r in ranked]
    pairs = [np.mean([(a & b).sum() / (a | b).sum() if (a | b).any() else 1.0 for a, b in zip(masks[i], masks[j])])
             for i in range(3) for j in range(i + 1, 3)]
    assert result.agreement == pytest.approx(np.mean(pairs), abs=1e-6)

    assert len(result.geometry) == 3
    check_geometry(result.geometry, ranked)
    assert any(g.object_path_valid[i] for g in result.geometry for i in range(len(g.object_path_valid)))
    # the same as lifting the result's own masks (camera grid) with the library, one shared plane
    library = hypotheses_geometry([(actor_masks(r), object_masks(r)) for r in ranked], DEPTH_MM, CAMERA,
                                  object_mask)
    for message, expected in zip(result.geometry, library):
        path = np.array([[p.pose.position.x, p.pose.position.y, p.pose.position.z] for p in message.object_path.poses])
        np.testing.assert_allclose(path, expected.object_path, atol=1e-9)
    # published on imagination/geometry too
    published = wait_for(lambda: len(geometry_topic) == 3 and geometry_topic, 10.0, "geometry messages")
    assert [g.hypothesis_index for g in published] == [0, 1, 2]
    assert [list(g.object_path_valid) for g in published] == [list(g.object_path_valid) for g in result.geometry]


def test_videos_for_all_samples_and_one_sample_results(start_node):
    h = start_node()
    result = h.result(h.send(h.goal(num_samples=2, videos_for_all_samples=True)), timeout_s=60.0)
    assert result.status == Imagine.Result.STATUS_SUCCEEDED, result.error
    assert [len(r.video_frames) for r in hypotheses(result)] == [result.rollout.num_frames] * 2
    assert list(result.geometry) == []   # no depth in the goal
    single = h.result(h.send(h.goal(trajectory_only=True)))
    assert single.status == Imagine.Result.STATUS_SUCCEEDED, single.error
    assert list(single.other_hypotheses) == [] and list(single.hypothesis_scores) == [1.0]
    assert (single.agreement, single.ranking) == (1.0, "single")
    assert (single.rollout.hypothesis_index, single.rollout.num_hypotheses) == (0, 1)


def test_samples_above_max_samples_are_refused_before_queueing(start_node):
    h = start_node(max_samples=2)
    gated = GatedPipeline.install(h)   # the running goal holds the model until the gate opens
    running = h.send(h.goal(trajectory_only=True))
    wait_for(gated.holding.is_set, 20.0, "a goal running")
    refused = h.result(h.send(h.goal(num_samples=3, trajectory_only=True)))
    assert refused.status == Imagine.Result.STATUS_INVALID_INPUT
    assert refused.error == ("num_samples: 3 hypotheses is above the node's max_samples limit of 2; ask for at "
                             "most 2 (or raise max_samples)")
    assert len(gated.calls) == 1 and gated.holding.is_set()   # answered while the model was busy
    gated.gate.set()
    assert h.result(running).status == Imagine.Result.STATUS_SUCCEEDED
    allowed = h.result(h.send(h.goal(num_samples=2, trajectory_only=True)))
    assert allowed.status == Imagine.Result.STATUS_SUCCEEDED and gated.calls[-1]["num_samples"] == 2


def test_topic_triggered_run_with_depth_publishes_geometry_and_agreement(start_node):
    h = start_node(use_depth=True, num_samples=2, publish_video=False)
    rollouts = h.subscribe(ImaginedRollout, "imagination/rollout")
    trajectories = h.subscribe(MaskTrajectory, "imagination/mask_trajectory")
    geometry = h.subscribe(InteractionGeometry, "imagination/geometry")
    publishers = {name: h.client.create_publisher(kind, topic, qos_profile_sensor_data) for name, kind, topic in (
        ("image", Image, "camera/image"), ("mask", Image, "object_mask"), ("depth", Image, "camera/depth"),
        ("info", CameraInfo, "camera/camera_info"))}
    prompt_pub = h.client.create_publisher(String, "prompt", 1)
    wait_for(lambda: all(p.get_subscription_count() for p in publishers.values()) and prompt_pub.get_subscription_count(),
             what="node subscriptions")
    prompt_pub.publish(String(data="push it left"))
    wait_for(lambda: h.node._latest_prompt, what="prompt received")
    image, object_mask = scene()
    header = Header(stamp=h.now_stamp(), frame_id="camera_optical")
    publishers["info"].publish(camera_info_msg(CAMERA, header))
    publishers["depth"].publish(depth_to_image_msg(DEPTH_MM.astype(np.float32) / 1000.0, header))  # 32FC1 metres
    publishers["mask"].publish(mask_to_image_msg(object_mask, header))
    publishers["image"].publish(rgb_to_image_msg(image, header))

    rollout = wait_for(lambda: rollouts and rollouts[0], 30.0, "rollout")
    assert rollout.request_id == "topic-1" and rollout.num_hypotheses == 2 and rollout.hypothesis_index == 0
    assert 0.0 <= rollout.agreement <= 1.0 and rollout.ranking == "medoid_object_iou"
    received = wait_for(lambda: len(geometry) == 2 and geometry, 10.0, "geometry of both hypotheses")
    assert [g.header.stamp for g in received] == [header.stamp] * 2
    # the rollout topic leaves the trajectory's images out: the first-ranked one is on its own topic
    assert not rollout.mask_trajectory.object_masks
    rollout.mask_trajectory = wait_for(lambda: trajectories and trajectories[0], 10.0, "trajectory")
    assert rollout.mask_trajectory.header.stamp == header.stamp
    check_geometry(received[:1], [rollout])
    assert received[1].hypothesis_index == 1 and received[1].support_plane_valid
