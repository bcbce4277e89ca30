"""mask2iv_ros: Mask2IV interaction imagination (mask trajectory + video) for ROS 2 robots.

The pure-Python library (models, pipeline, data, training, evaluation) imports without ROS.
The rosidl-generated interfaces (`mask2iv_ros.msg`, `mask2iv_ros.action`) are installed by CMake
into another site-packages directory; extending `__path__` lets them resolve as sub-packages of
this package whichever way it was installed (colcon workspace, or the venv bootstrap of `make`).
"""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
__version__ = "0.1.0"
