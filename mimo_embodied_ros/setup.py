from glob import glob

from setuptools import find_packages, setup

PACKAGE = "mimo_embodied_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/rviz", glob("rviz/*.rviz")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="mimo-embodied-ros maintainers",
    maintainer_email="maintainers@mimo-embodied-ros.dev",
    description="ROS 2 nodes for MiMo-Embodied-7B: keypoints, 3D points and boxes from RGB-D.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            f"perception = {PACKAGE}.nodes.perception_node:main",
            f"manipulation_bridge = {PACKAGE}.nodes.manipulation_bridge_node:main",
            f"navigator = {PACKAGE}.nodes.navigator_node:main",
            f"run_graph = {PACKAGE}.runner:main",
        ],
    },
)
