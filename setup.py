"""Package discovery for the mapped folders; everything else is in pyproject.toml.

``agents/`` and ``envs/`` install as ``medscope_gym.agents`` and ``medscope_gym.envs``
(``package-dir`` in pyproject.toml); setuptools' automatic discovery cannot name their subpackages
under the namespace, so they are found here rather than listed by hand.
"""

from setuptools import find_packages, setup

MAPPED = ("agents", "envs")

packages = find_packages(include=["medscope_gym", "medscope_gym.*"])
for folder in MAPPED:
    packages += [f"medscope_gym.{name}" for name in find_packages(include=[folder, f"{folder}.*"])]

setup(packages=packages)
