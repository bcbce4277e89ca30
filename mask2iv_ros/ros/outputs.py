"""Messages the node publishes for one finished imagination.

Every message carries the input image's stamp and frame_id (not the time the result was made), so
outputs can be matched to their inputs and projected with the same camera model. Masks are on the
camera image's pixel grid (the model's crop pasted back, outside = background) and
`imagined_region` says which part the model saw; video frames stay at model resolution and cover
that region (see msg/MaskTrajectory.msg and msg/ImaginedRollout.msg).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from sensor_msgs.msg import RegionOfInterest
from std_msgs.msg import Header

from mask2iv_ros.geometry.hypotheses import hypotheses_geometry
from mask2iv_ros.masks import DEFAULT_PALETTE, MaskPalette, overlay_masks
from mask2iv_ros.msg import ImaginedRollout, MaskTrajectory
from mask2iv_ros.pipeline.hypotheses import SINGLE
from mask2iv_ros.pipeline.resize import masks_in_input_frame
from mask2iv_ros.ros.geometry_messages import interaction_geometry_msg
from mask2iv_ros.ros.image_conversion import mask_to_image_msg, rgb_to_image_msg
from mask2iv_ros.ros.requests import ImagineRequest


def input_header(request: ImagineRequest) -> Header:
    return Header(stamp=request.stamp, frame_id=request.frame_id)


def mask_trajectory_msg(
    output: Any, header: Header, fps: float, palette: MaskPalette = DEFAULT_PALETTE, masks: Any = None
) -> MaskTrajectory:
    """`masks`: the output's masks_in_input_frame() when already computed."""
    msg = MaskTrajectory(header=header, fps=float(fps), imagined_region=imagined_region(output))
    masks = masks_in_input_frame(output, palette) if masks is None else masks
    msg.frames = [rgb_to_image_msg(frame, header) for frame in masks.mask_trajectory]
    msg.actor_masks = [mask_to_image_msg(mask, header) for mask in masks.actor_masks]
    msg.object_masks = [mask_to_image_msg(mask, header) for mask in masks.object_masks]
    msg.actor_color = list(palette.actor)
    msg.object_color = list(palette.object)
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
        num_hypotheses=len(getattr(output, "hypotheses", None) or [output]),
        hypothesis_score=float(getattr(output, "score", 1.0)),
        agreement=float(getattr(output, "agreement", 1.0)),
        ranking=str(getattr(output, "ranking", SINGLE)),
    )
    if output.video is not None:
        msg.video_frames = [rgb_to_image_msg(frame, header) for frame in output.video]
    return msg


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
