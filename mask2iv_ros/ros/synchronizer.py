"""Approximate-time synchronizer with message_filters' ApproximateTimeSynchronizer semantics.

message_filters is not on PyPI, and the node needs only its approximate-time policy, so this is a
small ROS-free re-implementation (unit-tested without rclpy):

- one queue per input, keyed by stamp (integer nanoseconds); a newer message with the same stamp
  replaces the older one; each queue keeps at most `queue_size` messages (oldest dropped first);
- when a message arrives, every other queue is searched for messages within `slop` of it, closest
  first; the first combination whose stamps span at most `slop` is emitted through the callback,
  and the emitted messages are removed from their queues.

One deliberate difference: message_filters requires the span to be strictly below `slop`, here it
may equal it, so `slop=0` synchronizes exactly-equal stamps instead of never firing.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Callable, Sequence

NANOSECONDS_PER_SECOND = 1_000_000_000


def stamp_to_ns(stamp: Any) -> int:
    """Integer nanoseconds of a builtin_interfaces/Time (rclpy or rosbags message)."""
    return int(stamp.sec) * NANOSECONDS_PER_SECOND + int(stamp.nanosec)


class ApproximateTimeSynchronizer:
    """Emit one message per input when all inputs have messages whose stamps lie within `slop_s`.

    `callback(*messages)` is called in input order, on the thread that called `add`, outside the
    lock (so a slow callback does not block other inputs' `add`).
    """

    def __init__(
        self,
        input_names: Sequence[str],
        queue_size: int,
        slop_s: float,
        callback: Callable[..., None],
    ):
        if len(input_names) < 1:
            raise ValueError("input_names: expected at least one input name, got none")
        if len(set(input_names)) != len(input_names):
            raise ValueError(f"input_names: expected distinct names, got {list(input_names)}")
        if int(queue_size) < 1:
            raise ValueError(f"queue_size: expected an integer >= 1, got {queue_size}")
        if not slop_s >= 0.0:
            raise ValueError(f"slop_s: expected seconds >= 0, got {slop_s}")
        self.input_names = tuple(input_names)
        self.queue_size = int(queue_size)
        self.slop_ns = int(round(slop_s * NANOSECONDS_PER_SECOND))
        self._callback = callback
        self._queues: list[dict[int, Any]] = [{} for _ in self.input_names]
        self._lock = threading.Lock()

    def add(self, input_name: str, stamp_ns: int, message: Any) -> None:
        """Queue `message` (stamped `stamp_ns`) on input `input_name`; may emit a set."""
        try:
            index = self.input_names.index(input_name)
        except ValueError:
            raise ValueError(f"input_name: expected one of {list(self.input_names)}, got {input_name!r}") from None
        with self._lock:
            matched = self._add_locked(index, int(stamp_ns), message)
        if matched is not None:
            self._callback(*matched)

    def clear(self) -> None:
        with self._lock:
            for queue in self._queues:
                queue.clear()

    def queue_lengths(self) -> dict[str, int]:
        with self._lock:
            return {name: len(queue) for name, queue in zip(self.input_names, self._queues)}

    def _add_locked(self, index: int, stamp_ns: int, message: Any) -> list[Any] | None:
        own_queue = self._queues[index]
        own_queue[stamp_ns] = message
        while len(own_queue) > self.queue_size:
            del own_queue[min(own_queue)]

        # Candidate stamps of every other input, closest to the new message first.
        candidates: list[list[int]] = []
        for other_index, queue in enumerate(self._queues):
            if other_index == index:
                continue
            near = sorted((s for s in queue if abs(s - stamp_ns) <= self.slop_ns), key=lambda s: abs(s - stamp_ns))
            if not near:
                return None
            candidates.append(near)

        for combination in itertools.product(*candidates):
            stamps = list(combination)
            stamps.insert(index, stamp_ns)
            if max(stamps) - min(stamps) <= self.slop_ns:
                return [queue.pop(stamp) for queue, stamp in zip(self._queues, stamps)]
        return None
