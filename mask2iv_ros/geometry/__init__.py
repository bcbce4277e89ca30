"""3D interaction geometry from a mask trajectory and the current depth (pure NumPy + OpenCV,
no ROS): camera model, depth decoding, contact detection, support-plane RANSAC, lifting of the
object / actor paths. Entry point: `interaction_geometry`. Frame: camera optical frame (x right,
y down, z forward), metres.
"""

from .camera import PinholeCamera
from .contact import contact_frame, contact_region
from .depth import decode_depth, valid_depth
from .interaction import InteractionGeometry, interaction_geometry
from .lifting import bottom_centre, bottom_centres, lift_region, lift_to_plane, lift_with_depth
from .plane import SupportPlane, fit_plane_ransac, fit_support_plane, support_ring

__all__ = [
    "InteractionGeometry", "PinholeCamera", "SupportPlane", "bottom_centre", "bottom_centres", "contact_frame",
    "contact_region", "decode_depth", "fit_plane_ransac", "fit_support_plane", "interaction_geometry", "lift_region",
    "lift_to_plane", "lift_with_depth", "support_ring", "valid_depth",
]
