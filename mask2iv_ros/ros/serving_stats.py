"""What `imagine_node` logs about faults and counts about its work (for logs and /diagnostics).

`CauseLog` warns once per cause (e.g. "object_mask:empty", "pipeline:num_frames",
"failed:RuntimeError:..."), so a stream of identical bad inputs does not flood the log while every
different fault is still seen at WARN (or ERROR) the first time. `ServingStats` counts results per
status and keeps the last run's latency and error, thread-safely.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Optional


class CauseLog:
    """Log once per cause at WARN (or the given level); repeats go to debug level, counted."""

    def __init__(self, logger: Any):
        self._logger = logger
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self.last_message: dict[str, str] = {}

    def report(self, cause: str, message: str, level: str = "warning", details: str = "") -> None:
        """`level`: "warning" or "error" for the first occurrence."""
        with self._lock:
            self.counts[cause] += 1
            self.last_message[cause] = message
            first = self.counts[cause] == 1
        if first:
            text = f"{message} (logged once per cause; repeats at debug level)"
            text = f"{text}\n{details}" if details else text
            # One call site per severity: rclpy refuses to log at two severities from one line.
            if level == "error":
                self._logger.error(text)
            else:
                self._logger.warning(text)
        else:
            self._logger.debug(f"{message} (occurrence {self.counts[cause]})")

    @property
    def distinct(self) -> int:
        with self._lock:
            return len(self.counts)


class ServingStats:
    """Results per status, the last run's latency and the last error (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.results: collections.Counter[str] = collections.Counter()
        self.last_latency_s: Optional[float] = None
        self.last_status = ""
        self.last_error = ""

    def record(self, status: str, error: str = "", latency_s: Optional[float] = None) -> None:
        with self._lock:
            self.results[status] += 1
            self.last_status = status
            if error:
                self.last_error = error
            if latency_s is not None:
                self.last_latency_s = latency_s

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"results": dict(self.results), "last_latency_s": self.last_latency_s,
                    "last_status": self.last_status, "last_error": self.last_error}
