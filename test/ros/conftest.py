"""Fixtures for the ROS tests: one rclpy context per module, the node spun in threads, a client.

The node under test runs in this process on a MultiThreadedExecutor thread (as in `main`), with a
tiny random pipeline; each test gets its own namespace so tests never see each other's topics.
ROS_AUTOMATIC_DISCOVERY_RANGE / ROS_DOMAIN_ID come from test/conftest.py.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from ros_test_helpers import NodeHarness

_namespaces = itertools.count()


@pytest.fixture(scope="session")
def tiny_pipeline():
    from mask2iv_ros.pipeline import build_tiny_pipeline

    return build_tiny_pipeline()


@pytest.fixture(scope="module")
def ros_context():
    rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python client) is not installed")
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)


@pytest.fixture
def start_node(ros_context, tiny_pipeline):
    """start_node(**parameters) -> NodeHarness in a fresh namespace; closed after the test."""
    harnesses: list[NodeHarness] = []

    def start(**parameters: Any) -> NodeHarness:
        harness = NodeHarness(ros_context, tiny_pipeline, f"/t{next(_namespaces)}", **parameters)
        harnesses.append(harness)
        return harness

    yield start
    for harness in harnesses:
        harness.close()
