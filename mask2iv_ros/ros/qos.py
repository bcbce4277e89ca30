"""The QoS of imagine_node's outputs, shared by the node and its readers (planner client, benchmarks).

Results are latched: reliable, transient local, keep last `depth`, so a subscriber that matches
after a result was published still gets it.
"""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


def latched_qos(depth: int) -> QoSProfile:
    return QoSProfile(reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                      history=HistoryPolicy.KEEP_LAST, depth=depth)
