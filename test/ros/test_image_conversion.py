"""sensor_msgs/Image <-> NumPy: round trips, row padding, byte order, errors naming the field."""

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs (ROS 2 message wheels) is not installed")
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from mask2iv_ros.ros.image_conversion import (  # noqa: E402
    ImageConversionError,
    image_msg_to_array,
    image_msg_to_mask,
    image_msg_to_rgb,
    is_empty,
    mask_to_image_msg,
    rgb_to_image_msg,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)


def padded_msg(pixels: np.ndarray, encoding: str, pad: int, bigendian: bool = False) -> Image:
    """An Image whose rows carry `pad` junk bytes after the pixels."""
    h, w = pixels.shape[:2]
    raw = pixels.astype(pixels.dtype.newbyteorder(">" if bigendian else "<")).reshape(h, -1).view(np.uint8)
    junk = np.full((h, pad), 0xAB, np.uint8)
    rows = np.concatenate([raw, junk], axis=1)
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=int(bigendian), step=rows.shape[1])
    msg.data = rows.tobytes()
    return msg


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_rgb_round_trip_keeps_header(encoding):
    header = Header(frame_id="camera")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    msg = rgb_to_image_msg(RGB, header, encoding=encoding)
    assert (msg.encoding, msg.step, msg.header.frame_id, msg.header.stamp.nanosec) == (encoding, 21, "camera", 345)
    np.testing.assert_array_equal(image_msg_to_rgb(msg), RGB)


@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize(
    "encoding, pixels",
    [
        ("rgb8", RGB),
        ("8UC3", RGB),
        ("bgr8", RGB[:, :, ::-1]),
        ("rgba8", np.concatenate([RGB, np.full((5, 7, 1), 9, np.uint8)], axis=2)),
        ("bgra8", np.concatenate([RGB[:, :, ::-1], np.full((5, 7, 1), 9, np.uint8)], axis=2)),
    ],
)
def test_colour_encodings_with_row_padding(encoding, pixels, pad):
    np.testing.assert_array_equal(image_msg_to_rgb(padded_msg(np.ascontiguousarray(pixels), encoding, pad)), RGB)


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_grey_image_is_replicated_and_is_a_mask(encoding):
    grey = RGB[:, :, 0]
    msg = padded_msg(grey, encoding, pad=1)
    np.testing.assert_array_equal(image_msg_to_rgb(msg), np.stack([grey] * 3, axis=2))
    np.testing.assert_array_equal(image_msg_to_mask(msg, "object_mask"), grey != 0)


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_16_bit_masks_honour_byte_order(encoding, bigendian):
    values = np.zeros((4, 6), np.uint16)
    values[1, 2] = 256  # low byte 0: wrong byte order would still be nonzero, so also check raw values
    values[3, 5] = 1
    msg = padded_msg(values, encoding, pad=2, bigendian=bigendian)
    np.testing.assert_array_equal(image_msg_to_array(msg), values)
    np.testing.assert_array_equal(image_msg_to_mask(msg), values != 0)


def test_mask_round_trip():
    mask = RNG.random((6, 8)) > 0.5
    msg = mask_to_image_msg(mask)
    assert msg.encoding == "mono8" and set(np.unique(np.frombuffer(msg.data, np.uint8))) <= {0, 255}
    np.testing.assert_array_equal(image_msg_to_mask(msg), mask)


def test_empty_optional_image():
    assert is_empty(Image())
    assert not is_empty(rgb_to_image_msg(RGB))


def test_errors_name_the_field():
    msg = rgb_to_image_msg(RGB)
    msg.encoding = "yuv422"
    with pytest.raises(ImageConversionError, match=r"^image\.encoding: expected a colour image encoding .*got 'yuv422'"):
        image_msg_to_rgb(msg)
    with pytest.raises(ImageConversionError, match=r"^image\.encoding: unsupported encoding 'yuv422'"):
        image_msg_to_array(msg)
    with pytest.raises(ImageConversionError, match=r"^object_mask\.encoding: expected a single-channel mask"):
        image_msg_to_mask(rgb_to_image_msg(RGB), "object_mask")
    with pytest.raises(ImageConversionError, match=r"^image\.encoding: expected a colour image"):
        image_msg_to_rgb(padded_msg(np.zeros((2, 2), np.uint16), "mono16", 0))
    short_step = rgb_to_image_msg(RGB)
    short_step.step = 20
    with pytest.raises(ImageConversionError, match=r"^image\.step: expected at least 21 bytes"):
        image_msg_to_rgb(short_step)
    truncated = rgb_to_image_msg(RGB)
    truncated.data = bytes(truncated.data)[:-1]
    with pytest.raises(ImageConversionError, match=r"^placement_mask\.data: expected 105 bytes"):
        image_msg_to_rgb(truncated, "placement_mask")
    with pytest.raises(ImageConversionError, match=r"^image: expected a non-empty image"):
        image_msg_to_rgb(Image(encoding="rgb8"))
    with pytest.raises(ImageConversionError, match=r"^rgb: expected a uint8 array"):
        rgb_to_image_msg(RGB.astype(np.float32))
