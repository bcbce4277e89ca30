import numpy as np
import pytest

from mask2iv_ros.pipeline import build_tiny_pipeline


@pytest.fixture(scope="module")
def tiny_pipe():
    return build_tiny_pipeline(seed=0)


@pytest.fixture
def inputs():
    """A 40x60 scene (not the 32x48 model resolution): image, object, actor, placement masks."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    object_mask = np.zeros((40, 60), bool)
    object_mask[18:28, 20:32] = True
    actor_mask = np.zeros((40, 60), bool)
    actor_mask[0:20, 10:22] = True
    placement_mask = np.zeros((40, 60), bool)
    placement_mask[10:20, 40:52] = True
    return dict(image=image, object_mask=object_mask, actor_mask=actor_mask,
                placement_mask=placement_mask)
