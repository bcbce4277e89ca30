import pytest


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """20 small synthetic episodes (48x64, 6 frames): 18 train / 2 test with the default split."""
    from mask2iv_ros.data.synthetic import SyntheticConfig, write_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic_dataset(root, 20, seed=0, config=SyntheticConfig(height=48, width=64, num_frames=6),
                            progress=False)
    return root


@pytest.fixture()
def tiny_pipe():
    import torch

    from mask2iv_ros.pipeline import build_tiny_pipeline

    pipe = build_tiny_pipeline(seed=0, modes=("position",))
    # The UNets' output convs start at zero (every prediction 0); randomise them so conditioning
    # actually changes the sampled videos.
    generator = torch.Generator().manual_seed(0)
    for unet in (pipe.video_unet, pipe.trajectory_unet_position):
        weight = unet.out[-1].weight
        weight.data = torch.randn(weight.shape, generator=generator) * 0.05
    return pipe
