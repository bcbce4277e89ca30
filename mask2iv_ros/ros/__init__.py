"""ROS 2 side of mask2iv_ros: the `imagine_node` and its helpers.

Only this sub-package and `mask2iv_ros.eval.replay` import rclpy; nothing is imported here so that
`mask2iv_ros.ros.parameters` and `mask2iv_ros.ros.synchronizer` stay usable without ROS.
"""
