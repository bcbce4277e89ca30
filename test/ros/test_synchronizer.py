"""Approximate-time synchronizer: message_filters semantics, without ROS."""

import pytest

from mask2iv_ros.ros.synchronizer import ApproximateTimeSynchronizer

MS = 1_000_000  # nanoseconds per millisecond


def make(names=("image", "mask"), queue_size=10, slop_s=0.05):
    emitted = []
    sync = ApproximateTimeSynchronizer(names, queue_size, slop_s, lambda *msgs: emitted.append(msgs))
    return sync, emitted


def test_emits_when_all_inputs_within_slop_and_removes_matched():
    sync, emitted = make()
    sync.add("image", 1000 * MS, "img@1000")
    assert emitted == []
    sync.add("mask", 1030 * MS, "mask@1030")
    assert emitted == [("img@1000", "mask@1030")]
    assert sync.queue_lengths() == {"image": 0, "mask": 0}


def test_no_set_when_outside_slop():
    sync, emitted = make(slop_s=0.05)
    sync.add("image", 1000 * MS, "img")
    sync.add("mask", 1051 * MS, "mask")
    assert emitted == []
    assert sync.queue_lengths() == {"image": 1, "mask": 1}


def test_slop_is_inclusive_and_zero_slop_matches_equal_stamps():
    sync, emitted = make(slop_s=0.0)
    sync.add("image", 5 * MS, "a")
    sync.add("mask", 5 * MS + 1, "b")
    assert emitted == []
    sync.add("mask", 5 * MS, "c")
    assert emitted == [("a", "c")]


def test_picks_closest_candidate_and_callback_keeps_input_order():
    sync, emitted = make(names=("image", "object_mask", "placement_mask"))
    sync.add("object_mask", 990 * MS, "om@990")
    sync.add("object_mask", 1005 * MS, "om@1005")
    sync.add("placement_mask", 1010 * MS, "pm@1010")
    sync.add("image", 1000 * MS, "img@1000")
    assert emitted == [("img@1000", "om@1005", "pm@1010")]
    # The unmatched older object mask stays queued.
    assert sync.queue_lengths() == {"image": 0, "object_mask": 1, "placement_mask": 0}


def test_span_of_whole_set_must_fit_the_slop():
    # Each mask is within slop of the image, but the two masks are 80 ms apart.
    sync, emitted = make(names=("image", "a", "b"), slop_s=0.05)
    sync.add("a", 960 * MS, "a@960")
    sync.add("b", 1040 * MS, "b@1040")
    sync.add("image", 1000 * MS, "img")
    assert emitted == []
    sync.add("b", 1000 * MS, "b@1000")
    assert emitted == [("img", "a@960", "b@1000")]


def test_queue_size_drops_oldest():
    sync, emitted = make(queue_size=2)
    for t in (100, 200, 300):
        sync.add("image", t * MS, f"img@{t}")
    assert sync.queue_lengths()["image"] == 2
    sync.add("mask", 100 * MS, "mask@100")  # its partner was dropped
    assert emitted == []
    sync.add("mask", 300 * MS, "mask@300")
    assert emitted == [("img@300", "mask@300")]


def test_same_stamp_replaces_previous_message():
    sync, emitted = make()
    sync.add("image", 7 * MS, "old")
    sync.add("image", 7 * MS, "new")
    sync.add("mask", 7 * MS, "m")
    assert emitted == [("new", "m")]


def test_single_input_emits_immediately():
    sync, emitted = make(names=("image",))
    sync.add("image", 1, "x")
    assert emitted == [("x",)]


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(input_names=(), queue_size=1, slop_s=0.1), "input_names"),
        (dict(input_names=("a", "a"), queue_size=1, slop_s=0.1), "input_names"),
        (dict(input_names=("a",), queue_size=0, slop_s=0.1), "queue_size"),
        (dict(input_names=("a",), queue_size=1, slop_s=-1.0), "slop_s"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ApproximateTimeSynchronizer(callback=print, **kwargs)


def test_unknown_input_name():
    sync, _ = make()
    with pytest.raises(ValueError, match="input_name"):
        sync.add("depth", 0, None)
