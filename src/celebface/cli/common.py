"""Arguments shared by several subcommands."""

from __future__ import annotations

import argparse

from celebface.device import DEVICES


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", choices=DEVICES,
                   help="compute device (default: auto = cuda when available)")
