"""Evaluation: metrics, the `mask2iv-eval` harness and the Table 1/2 reproduction.

Import submodules directly (``mask2iv_ros.eval.metrics``); nothing here imports rclpy
(only ``replay.py`` does, and it is not imported by this package).
"""
