"""`imagine_node`'s diagnostic_msgs/DiagnosticArray for /diagnostics (rqt_robot_monitor, aggregators).

One DiagnosticStatus named "<node name>: imagination", hardware_id = the torch device, with the
model id, lifecycle state, queue length, last latency and result/error counts as key-values.
Level: ERROR when the last run failed (a model or device fault), WARN when the node is not active
or its queue is full, else OK. The `diagnostic_updater` library is not on PyPI, so the array is
built here from diagnostic_msgs (the `ros-diagnostic-msgs` wheel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

STATUSES = ("succeeded", "invalid_input", "canceled", "rejected", "failed", "timed_out")


@dataclass
class NodeHealth:
    """What the node reports each period (plain values, gathered under the node's locks)."""

    node_name: str
    lifecycle_state: str
    model_id: str
    device: str
    torch_threads: int
    queue_length: int
    max_queue: int
    busy_policy: str
    running: bool
    results: dict[str, int]
    last_latency_s: Optional[float]
    last_status: str
    last_error: str
    error_causes: int


def level_and_message(health: NodeHealth) -> tuple[bytes, str]:
    if health.last_status == "failed":
        return DiagnosticStatus.ERROR, f"last imagination failed: {health.last_error}"
    if health.lifecycle_state != "active":
        return DiagnosticStatus.WARN, f"not serving (lifecycle state {health.lifecycle_state})"
    if health.busy_policy == "queue" and health.running and health.queue_length >= health.max_queue:
        return DiagnosticStatus.WARN, f"queue full ({health.queue_length} waiting); new requests are rejected"
    return DiagnosticStatus.OK, "running an imagination" if health.running else "ready"


def diagnostic_array(health: NodeHealth, stamp: Any) -> DiagnosticArray:
    level, message = level_and_message(health)
    latency = "" if health.last_latency_s is None else f"{health.last_latency_s:.3f}"
    values = {
        "model_id": health.model_id,
        "device": health.device,
        "lifecycle_state": health.lifecycle_state,
        "torch_threads": str(health.torch_threads),
        "running": str(health.running).lower(),
        "queue_length": str(health.queue_length),
        "max_queue": str(health.max_queue),
        "busy_policy": health.busy_policy,
        "last_latency_s": latency,
        **{f"results_{status}": str(health.results.get(status, 0)) for status in STATUSES},
        "error_causes": str(health.error_causes),
        "last_error": health.last_error,
    }
    status = DiagnosticStatus(
        level=level,
        name=f"{health.node_name}: imagination",
        message=message,
        hardware_id=health.device,
        values=[KeyValue(key=key, value=value) for key, value in values.items()],
    )
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array
