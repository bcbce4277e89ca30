"""Messages the node publishes for one finished imagination.

Every message carries the input image's stamp and frame_id (not the time the result was made), so
outputs can be matched to their inputs and projected with the same camera model. Masks are on the
camera image's pixel grid (the model's crop pasted back, outside = background) and
`imagined_region` says which part the model saw; video frames stay at model resolution and cover
that region (see msg/MaskTrajectory.msg and msg/ImaginedRollout.msg).

The masks are sent as the `trajectory_encoding` parameter says (mono8 masks, colour frames or
both), and each payload once per audience: the mask_trajectory topic carries the trajectory, the
rollout topic a rollout whose mask_trajectory is `without_images` (header, region, palette and fps
only), the action result the whole rollout for the goal's client (README, "What is sent where").
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from sensor_msgs.msg import RegionOfInterest
from std_msgs.msg import Header

from mask2iv_ros.geometry.hypotheses import hypotheses_geometry
from mask2iv_ros.masks import DEFAULT_PALETTE, MaskPalette, encode_mask_video, overlay_masks
from mask2iv_ros.msg import ImaginedRollout, MaskTrajectory
from mask2iv_ros.pipeline.hypotheses import SINGLE
from mask2iv_ros.pipeline.resize import masks_in_input_frame
from mask2iv_ros.ros.geometry_messages import interaction_geometry_msg
from mask2iv_ros.ros.image_conversion import mask_to_image_msg, rgb_to_image_msg
from mask2iv_ros.ros.parameters import TRAJECTORY_ENCODINGS
from mask2iv_ros.ros.requests import ImagineRequest


def input_header(request: ImagineRequest) -> Header:
    return Header(stamp=request.stamp, frame_id=request.frame_id)


def hypotheses_of(output: Any) -> list:
    """Every hypothesis of a pipeline output in rank order (the output itself is the first)."""
    return list(getattr(output, "hypotheses", None) or [output])


def mask_trajectory_msg(
    output: Any, header: Header, fps: float, palette: MaskPalette = DEFAULT_PALETTE, masks: Any = None,
    encoding: str = "masks",
) -> MaskTrajectory:
    """`masks`: the output's masks_in_input_frame() when already computed. `encoding` (the
    trajectory_encoding parameter): 'masks' fills actor_masks + object_masks (mono8), 'colour'
    fills frames (rgb8), 'both' fills all three."""
    if encoding not in TRAJECTORY_ENCODINGS:
        raise ValueError(f"trajectory_encoding: expected one of {list(TRAJECTORY_ENCODINGS)}, got {encoding!r}")
    msg = without_images(MaskTrajectory(header=header, fps=float(fps), imagined_region=imagined_region(output)), palette)
    masks = masks_in_input_frame(output, palette, colour=encoding != "masks") if masks is None else masks
    if encoding in ("colour", "both"):
        colours = masks.mask_trajectory if masks.mask_trajectory is not None else \
            encode_mask_video(masks.object_masks, masks.actor_masks, palette)
        msg.frames = [rgb_to_image_msg(frame, header) for frame in colours]
    if encoding in ("masks", "both"):
        msg.actor_masks = [mask_to_image_msg(mask, header) for mask in masks.actor_masks]
        msg.object_masks = [mask_to_image_msg(mask, header) for mask in masks.object_masks]
    return msg


def without_images(trajectory: MaskTrajectory, palette: Optional[MaskPalette] = None) -> MaskTrajectory:
    """A MaskTrajectory with `trajectory`'s header, imagined_region, fps and palette (or `palette`'s)
    and no frames or masks: what the rollout topic carries, the images being on the trajectory topic."""
    msg = MaskTrajectory(header=trajectory.header, fps=trajectory.fps, imagined_region=trajectory.imagined_region)
    if palette is None:
        msg.actor_color, msg.object_color = trajectory.actor_color, trajectory.object_color
        msg.background_color = trajectory.background_color
    else:
        msg.actor_color, msg.object_color = list(palette.actor), list(palette.object)
        msg.background_color = list(palette.background)
    return msg


def imagined_region(output: Any) -> RegionOfInterest:
    """The input-image region the output covers (the whole output when it has no region)."""
    region = getattr(output, "input_region", None)
    if region is None:
        height, width = output.actor_masks.shape[1:3]
        region = (0, 0, width, height)
    x_offset, y_offset, width, height = (int(v) for v in region)
    return RegionOfInterest(x_offset=x_offset, y_offset=y_offset, width=width, height=height,
                            do_rectify=False)


def rollout_msg(
    request: ImagineRequest,
    output: Any,
    trajectory: MaskTrajectory,
    *,
    fps: float,
    model_id: str,
    total_seconds: float,
    hypothesis_index: int = 0,
) -> ImaginedRollout:
    header = trajectory.header
    msg = ImaginedRollout(
        header=header,
        request_id=request.request_id,
        input_stamp=header.stamp,
        mask_trajectory=trajectory,
        fps=float(fps),
        mode=request.mode,
        prompt=request.prompt,
        num_frames=int(len(output.mask_trajectory)),
        num_inference_steps=int(request.num_inference_steps),
        guidance_scale=float(request.guidance_scale),
        seed=int(request.seed if getattr(output, "seed", None) is None else output.seed),
        model_id=model_id,
        trajectory_seconds=float(output.timings.get("trajectory", 0.0)),
        video_seconds=float(output.timings.get("video", 0.0)),
        total_seconds=float(total_seconds),
        # several hypotheses (pipeline num_samples): this one's place among them
        hypothesis_index=int(hypothesis_index),
        num_hypotheses=len(hypotheses_of(output)),
        hypothesis_score=float(getattr(output, "score", 1.0)),
        agreement=float(getattr(output, "agreement", 1.0)),
        ranking=str(getattr(output, "ranking", SINGLE)),
    )
    if output.video is not None:
        msg.video_frames = [rgb_to_image_msg(frame, header) for frame in output.video]
    return msg


def with_trajectory(rollout: ImaginedRollout, trajectory: Optional[MaskTrajectory] = None,
                    video: bool = True) -> ImaginedRollout:
    """A copy of `rollout` (sharing its images) with `trajectory` instead of its own (None: its own),
    and without video_frames unless `video`."""
    fields = {name: getattr(rollout, name) for name in rollout.get_fields_and_field_types()}
    fields["mask_trajectory"] = rollout.mask_trajectory if trajectory is None else trajectory
    fields["video_frames"] = list(rollout.video_frames) if video else []
    return ImaginedRollout(**fields)


def overlay_frames(image: np.ndarray, output: Any, palette: MaskPalette = DEFAULT_PALETTE) -> np.ndarray:
    """uint8 [T, H, W, 3]: the predicted actor/object masks of each frame tinted onto the input image."""
    masks = masks_in_input_frame(output, palette)
    # A real (contiguous, writable) copy per frame: OpenCV draws the contours in place.
    frames = np.ascontiguousarray(np.broadcast_to(image, masks.actor_masks.shape + (3,)))
    return overlay_masks(frames, object_mask=masks.object_masks, actor_mask=masks.actor_masks, palette=palette)


def geometry_msgs(request: ImagineRequest, hypothesis_masks: list[Any], header: Header, fps: float) -> list[Any]:
    """InteractionGeometry messages of every hypothesis (rank order) of a request with depth +
    camera_info, all on one support plane around the input object mask; [] without depth.
    `hypothesis_masks`: each hypothesis' masks_in_input_frame() (the camera image's pixel grid)."""
    if request.depth_m is None or request.camera is None:
        return []
    geometries = hypotheses_geometry([(m.actor_masks, m.object_masks) for m in hypothesis_masks], request.depth_m,
                                     request.camera, request.object_mask, request.actor_mask)
    return [interaction_geometry_msg(g, header, fps, index) for index, g in enumerate(geometries)]


def output_fps(output: Any, fps_parameter: float) -> float:
    """The `output_fps` parameter when set (> 0), else the model's own frame rate."""
    model_fps: Optional[float] = getattr(output, "fps", None)
    return float(fps_parameter) if fps_parameter > 0 else float(model_fps or 0.0)
