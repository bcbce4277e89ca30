"""The messages of one imagination are on the camera image's pixel grid and name the imagined region."""

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python client) is not installed")

from builtin_interfaces.msg import Time  # noqa: E402

from mask2iv_ros.masks import ACTOR, OBJECT, encode_mask_video  # noqa: E402
from mask2iv_ros.pipeline import Mask2IVOutput  # noqa: E402
from mask2iv_ros.pipeline.resize import center_crop_box, crop_geometry, resize_center_crop  # noqa: E402
from mask2iv_ros.ros import outputs  # noqa: E402
from mask2iv_ros.ros.image_conversion import image_msg_to_mask, image_msg_to_rgb, trajectory_masks  # noqa: E402
from mask2iv_ros.ros.requests import ImagineRequest  # noqa: E402

IN_H, IN_W = 480, 640     # a BridgeData / webcam frame
MODEL = (240, 240)        # a square model at an exact factor 2: the crop is x 80..560
FRAMES = 3


def _request(image):
    return ImagineRequest(request_id="r1", stamp=Time(sec=5, nanosec=7), frame_id="camera", image=image,
                          object_mask=np.zeros(image.shape[:2], bool), mode="text", prompt="push",
                          placement_mask=None, actor_mask=None, num_frames=FRAMES, num_inference_steps=2,
                          guidance_scale=1.0, seed=3, trajectory_only=False)


def _output_from_input_masks(object_masks, actor_masks, video):
    """What the pipeline returns for masks it predicted exactly where the input masks are."""
    g = crop_geometry(IN_H, IN_W, *MODEL)
    obj = g.visible(resize_center_crop(object_masks, *MODEL, "nearest"))
    actor = g.visible(resize_center_crop(actor_masks, *MODEL, "nearest")) & ~obj
    return Mask2IVOutput(mask_trajectory=encode_mask_video(obj, actor), actor_masks=actor, object_masks=obj,
                         video=video, timings={"trajectory": 0.1, "video": 0.2}, fps=2.0,
                         input_region=tuple(g.box), input_size=(IN_H, IN_W))


@pytest.fixture
def scene():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (IN_H, IN_W, 3), dtype=np.uint8)
    obj = np.zeros((FRAMES, IN_H, IN_W), bool)
    actor = np.zeros((FRAMES, IN_H, IN_W), bool)
    for t in range(FRAMES):
        obj[t, 200:260, 300 + 20 * t:360 + 20 * t] = True   # 2x2-block aligned: resolvable at factor 2
        actor[t, 100:200, 240:300] = True
    actor[:, :, :80] = True   # an arm left of the crop: the model cannot see it
    video = rng.integers(0, 256, (FRAMES,) + MODEL + (3,), dtype=np.uint8)
    return image, obj, actor, video


def test_rollout_masks_are_camera_sized_and_region_is_the_crop(scene):
    image, obj, actor, video = scene
    output = _output_from_input_masks(obj, actor, video)
    request = _request(image)
    header = outputs.input_header(request)
    trajectory = outputs.mask_trajectory_msg(output, header, fps=2.0, encoding="both")
    rollout = outputs.rollout_msg(request, output, trajectory, fps=2.0, model_id="m", total_seconds=1.0)

    region = rollout.mask_trajectory.imagined_region
    box = center_crop_box(IN_H, IN_W, *MODEL)
    assert (region.x_offset, region.y_offset, region.width, region.height) == tuple(box) == (80, 0, 480, 480)
    assert not region.do_rectify
    sent = rollout.mask_trajectory
    assert len(sent.frames) == len(sent.object_masks) == len(sent.actor_masks) == FRAMES
    for msg in [*sent.frames, *sent.object_masks, *sent.actor_masks]:
        assert (msg.height, msg.width) == (IN_H, IN_W)
        assert (msg.header.stamp, msg.header.frame_id) == (Time(sec=5, nanosec=7), "camera")
    # the object comes back on the same camera pixels; the arm outside the crop is background
    inside = np.zeros((IN_H, IN_W), bool)
    inside[:, 80:560] = True
    for t in range(FRAMES):
        np.testing.assert_array_equal(image_msg_to_mask(sent.object_masks[t]), obj[t])
        np.testing.assert_array_equal(image_msg_to_mask(sent.actor_masks[t]), actor[t] & inside & ~obj[t])
        colors = image_msg_to_rgb(sent.frames[t])
        np.testing.assert_array_equal(np.all(colors == (255, 0, 0), axis=-1), obj[t])
        assert (colors[:, :80] == 0).all()
    # video frames stay at model resolution and cover the region
    assert len(rollout.video_frames) == FRAMES
    assert all((f.height, f.width) == MODEL for f in rollout.video_frames)
    np.testing.assert_array_equal(image_msg_to_rgb(rollout.video_frames[1]), video[1])
    assert rollout.num_frames == FRAMES and rollout.video_seconds == pytest.approx(0.2)


def test_overlay_is_on_the_camera_image(scene):
    image, obj, actor, video = scene
    output = _output_from_input_masks(obj, actor, video)
    overlay = outputs.overlay_frames(image, output)
    assert overlay.shape == (FRAMES, IN_H, IN_W, 3)
    # outside the crop nothing is drawn: the input shows through unchanged
    np.testing.assert_array_equal(overlay[:, 300:, :80], np.broadcast_to(image[300:, :80], (FRAMES, 180, 80, 3)))
    assert not np.array_equal(overlay[0, 200:260, 300:360], image[200:260, 300:360])


def test_output_made_at_model_size_has_the_full_region():
    labels = np.zeros((2, 32, 48), np.uint8)
    labels[:, 4:8, 10:20] = OBJECT
    labels[:, 10:12, 0:5] = ACTOR
    output = Mask2IVOutput(mask_trajectory=encode_mask_video(labels == OBJECT, labels == ACTOR),
                           actor_masks=labels == ACTOR, object_masks=labels == OBJECT, video=None)
    msg = outputs.mask_trajectory_msg(output, outputs.Header(frame_id="c"), fps=1.0)
    region = msg.imagined_region
    assert (region.x_offset, region.y_offset, region.width, region.height) == (0, 0, 48, 32)
    np.testing.assert_array_equal(image_msg_to_mask(msg.object_masks[0]), labels[0] == OBJECT)


def test_pipeline_result_for_a_wide_camera_becomes_camera_sized_messages(tiny_pipeline):
    """End to end on the tiny pipeline (32x48): a 480x960 image is imagined in its centre 720x480."""
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (480, 960, 3), dtype=np.uint8)
    obj = np.zeros((480, 960), bool)
    obj[200:300, 400:520] = True
    output = tiny_pipeline(image, obj, prompt="push", num_inference_steps=1, seed=0)
    request = _request(image)
    trajectory = outputs.mask_trajectory_msg(output, outputs.input_header(request), fps=2.0, encoding="both")
    rollout = outputs.rollout_msg(request, output, trajectory, fps=2.0, model_id="tiny", total_seconds=1.0)
    region = rollout.mask_trajectory.imagined_region
    assert (region.x_offset, region.y_offset, region.width, region.height) == (120, 0, 720, 480)
    assert all((m.height, m.width) == (480, 960) for m in trajectory.object_masks + trajectory.frames)
    assert all((f.height, f.width) == (32, 48) for f in rollout.video_frames)
    for t, msg in enumerate(trajectory.object_masks):
        sent = image_msg_to_mask(msg)
        assert not sent[:, :120].any() and not sent[:, 840:].any()
        np.testing.assert_array_equal(sent, output.masks_in_input_frame().object_masks[t])


@pytest.mark.parametrize("encoding, fields", [("masks", {"actor_masks", "object_masks"}), ("colour", {"frames"}),
                                              ("both", {"frames", "actor_masks", "object_masks"})])
def test_trajectory_encoding_fills_only_its_fields(scene, encoding, fields):
    image, obj, actor, video = scene
    output = _output_from_input_masks(obj, actor, video)
    msg = outputs.mask_trajectory_msg(output, outputs.input_header(_request(image)), fps=2.0, encoding=encoding)
    filled = {name for name in ("frames", "actor_masks", "object_masks") if len(getattr(msg, name))}
    assert filled == fields
    assert all(len(getattr(msg, name)) == FRAMES for name in fields)
    if "frames" in fields:  # the colour frames alone still give both masks, with the palette sent along
        colours = np.stack([image_msg_to_rgb(f) for f in msg.frames])
        np.testing.assert_array_equal(np.all(colours == tuple(msg.object_color), axis=-1), obj)
        inside = np.zeros((IN_H, IN_W), bool)
        inside[:, 80:560] = True
        np.testing.assert_array_equal(np.all(colours == tuple(msg.actor_color), axis=-1), actor & inside & ~obj)


def test_bad_trajectory_encoding_names_the_parameter(scene):
    image, obj, actor, video = scene
    output = _output_from_input_masks(obj, actor, video)
    with pytest.raises(ValueError, match=r"^trajectory_encoding: expected one of \['masks', 'colour', 'both'\], got 'png'"):
        outputs.mask_trajectory_msg(output, outputs.Header(), fps=2.0, encoding="png")


def test_rollout_for_the_topic_keeps_the_trajectory_metadata_but_not_its_images(scene):
    from rclpy.serialization import serialize_message

    image, obj, actor, video = scene
    output = _output_from_input_masks(obj, actor, video)
    request = _request(image)
    trajectory = outputs.mask_trajectory_msg(output, outputs.input_header(request), fps=2.0)
    rollout = outputs.rollout_msg(request, output, trajectory, fps=2.0, model_id="m", total_seconds=1.0)
    topic = outputs.with_trajectory(rollout, outputs.without_images(rollout.mask_trajectory))
    bare = topic.mask_trajectory
    assert not bare.frames and not bare.actor_masks and not bare.object_masks
    assert (bare.header, bare.imagined_region, bare.fps) == (trajectory.header, trajectory.imagined_region, 2.0)
    assert list(bare.object_color) == list(trajectory.object_color)
    assert len(topic.video_frames) == FRAMES and topic.request_id == "r1" and topic.seed == rollout.seed
    # the source rollout is untouched, and the topic message is smaller by exactly the masks
    assert len(rollout.mask_trajectory.object_masks) == FRAMES
    mask_bytes = 2 * FRAMES * IN_H * IN_W
    assert mask_bytes <= len(serialize_message(rollout)) - len(serialize_message(topic)) < mask_bytes + 4096
    metadata_only = outputs.with_trajectory(topic, video=False)
    assert not metadata_only.video_frames and len(topic.video_frames) == FRAMES


@pytest.mark.parametrize("encoding", ["masks", "colour", "both"])
def test_trajectory_masks_reads_every_encoding(scene, encoding):
    image, obj, actor, video = scene
    output = _output_from_input_masks(obj, actor, video)
    msg = outputs.mask_trajectory_msg(output, outputs.Header(), fps=2.0, encoding=encoding)
    got_actor, got_object = trajectory_masks(msg)
    expected = output.masks_in_input_frame()
    np.testing.assert_array_equal(got_object, expected.object_masks)
    np.testing.assert_array_equal(got_actor, expected.actor_masks)
    with pytest.raises(ValueError, match="^mask_trajectory: expected actor/object masks or colour frames"):
        trajectory_masks(outputs.without_images(msg))


def test_masks_without_colour_frames_still_give_every_encoding(scene):
    image, obj, actor, video = scene
    output = _output_from_input_masks(obj, actor, video)
    plain = output.masks_in_input_frame()
    masks_only = outputs.masks_in_input_frame(output, colour=False)  # what the node computes for 'masks'
    assert masks_only.mask_trajectory is None
    np.testing.assert_array_equal(masks_only.object_masks, plain.object_masks)
    header = outputs.Header()
    msg = outputs.mask_trajectory_msg(output, header, fps=2.0, masks=masks_only, encoding="both")
    np.testing.assert_array_equal(np.stack([image_msg_to_rgb(f) for f in msg.frames]), plain.mask_trajectory)
