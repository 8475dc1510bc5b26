from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="xwq",
    version="0.1.0",
    description="Weighted QMIX (CW/OW-QMIX) and the QMIX family for cooperative multi-agent RL",
    long_description=Path(__file__).with_name("README.md").read_text(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["xwq", "xwq.*"]),
    package_data={"xwq": ["configs/*.yaml", "configs/**/*.yaml"]},
    include_package_data=True,
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.1",
        "numpy>=1.24",
        "pyyaml>=6.0",
        "gymnasium>=1.0",
        "pettingzoo>=1.24",
        "mpe2>=1.0",
        "tensorboardX>=2.6",
        "tqdm>=4.60",
        "matplotlib>=3.7",  # learning curves and comparison plots
        "imageio>=2.30",  # GIFs of greedy episodes
    ],
    extras_require={
        "dev": ["pytest>=7", "ruff>=0.5"],
        # sweeps on a Ray cluster (RayBackend, xwq sweep --backend ray, Ray Tune): ~700 MB
        "ray": ["ray[default]>=2.60", "ray[tune]>=2.60"],
        # env "smax": JaxMARL's SMAX (CPU-only JAX, about 1 GB)
        "smax": ["jaxmarl==0.2.0"],
        # env "sc2" needs oxwhirl's smac from git and StarCraft II; env "football" needs
        # gfootball built from source: see the README (neither installs from an extra)
    },
    entry_points={"console_scripts": ["xwq=xwq.cli:main"]},
)
