from glob import glob

from setuptools import find_packages, setup

PACKAGE = "mimo_embodied_sim"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    # Scenes are generated as MJCF text in code; any XML added to the package ships with it.
    package_data={PACKAGE: ["*.xml", "assets/*.xml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="mimo-embodied-ros maintainers",
    maintainer_email="maintainers@mimo-embodied-ros.dev",
    description="Headless MuJoCo tabletop RGB-D camera with ground truth for mimo_embodied_ros.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            f"tabletop_camera = {PACKAGE}.tabletop_camera_node:main",
            f"pickplace_sim = {PACKAGE}.pickplace_sim_node:main",
            f"apartment_sim = {PACKAGE}.apartment_sim_node:main",
        ],
    },
)
