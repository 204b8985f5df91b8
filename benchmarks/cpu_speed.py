"""What makes network training affordable on this CPU: milliseconds per image of one training
step (forward, backward, Adam) for dlib's face ResNet and MobileNetV2 + the reference head,
with frozen levels/blocks, a cached frozen trunk, channels_last and 1 vs 2 torch threads.

    .venv/bin/python benchmarks/cpu_speed.py [--batch 16] [--reps 3]

Results: ``benchmarks/results/cpu_speed.md`` / ``.json``. Timings on a shared machine are
noisy: compare rows of one run (the best of ``--reps`` steps is kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def step_ms(net: Any, x: Any, y: Any, reps: int, channels_last: bool = False) -> float:
    """Best milliseconds per image of a training step."""
    import torch
    import torch.nn.functional as F

    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        if x.dim() == 4 and x.dtype != torch.uint8:
            x = x.contiguous(memory_format=torch.channels_last)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, 1e-4)
    net.train()
    best = float("inf")
    for _ in range(reps + 1):  # the first step warms up
        t = time.perf_counter()
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        best = min(best, time.perf_counter() - t)
    return 1000 * best / len(x)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    import torch

    from celebface.io import atomic_write_json, atomic_write_text
    from celebface.recognition.dlib_torch import freeze_levels
    from celebface.training.face_resnet import ClassHead, FaceResNetNet, build_dlib_net
    from celebface.training.inception import build_network

    n = args.batch
    chips = torch.randint(0, 255, (n, 150, 150, 3), dtype=torch.uint8)
    y = torch.randint(0, 105, (n,))
    rows: list[dict[str, Any]] = []

    def add(model: str, setting: str, threads: int, ms: float) -> None:
        rows.append({"model": model, "setting": setting, "threads": threads,
                     "ms_per_image": round(ms, 1)})
        print(rows[-1], flush=True)

    for threads in (1, 2):
        torch.set_num_threads(threads)
        for freeze in (0, 3):
            base = build_dlib_net()
            freeze_levels(base, freeze)
            net = FaceResNetNet(base, ClassHead(105))
            add("face-resnet", f"whole net, levels 1-{freeze} frozen" if freeze else
                "whole net, all trained", threads, step_ms(net, chips, y, args.reps))
        base = build_dlib_net()
        freeze_levels(base, 4)
        with torch.inference_mode():
            t = time.perf_counter()
            maps = base.trunk(chips, 4)
            fwd = 1000 * (time.perf_counter() - t) / n
        add("face-resnet", "levels 1-4 forward once (trunk cache fill)", threads, fwd)
        net = FaceResNetNet(base, ClassHead(105), from_level=4)
        add("face-resnet", "level 5 + head on cached level-4 maps", threads,
            step_ms(net, maps.clone(), y, args.reps))
        for size, freeze, cl in ((128, 0, False), (128, 7, False), (128, 7, True),
                                 (128, 14, False)):
            net = build_network(105, size, "mobilenet_v2", freeze)
            x = torch.randn(n, 3, size, size)
            add("mobilenet_v2 + reference head",
                f"{size} px, {freeze} blocks frozen{', channels_last' if cl else ''}",
                threads, step_ms(net, x, y, args.reps, cl))
    result = {"rows": rows, "batch": n,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores shared (load "
                         f"{os.getloadavg()[0]:.1f} at the end)"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "cpu_speed.json", result)
    lines = ["# Training-step cost on this CPU (ms per image, lower is better)", "",
             f"Batch {n}; {result['machine']}; `python benchmarks/cpu_speed.py`.", "",
             "| model | setting | torch threads | ms / image |", "|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['setting']} | {r['threads']} | {r['ms_per_image']} |"
              for r in rows]
    atomic_write_text(RESULTS / "cpu_speed.md", "\n".join(lines) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
