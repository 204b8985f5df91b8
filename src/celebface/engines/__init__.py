"""Engines that run the crop and embed stages: ``local`` (this machine, the default) and
``ray`` (a Ray cluster, :mod:`celebface.engines.ray_engine`; ``pip install celebface[ray]``)."""

ENGINES = ("local", "ray")
