"""Every surface on a CUDA GPU against the CPU, on five_celeb: the finder and the embedder run
on the device asked for, and faces, vectors and names agree between the devices and between
the facade, the service, the CLI and a video frame. Also a short training run on the GPU.

    python benchmarks/gpu_check.py --data examples/five_celeb --out benchmarks/results

Needs a CUDA GPU (exits 2 without one). Writes ``gpu_check.md`` and ``gpu_check.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _device_of(module: object) -> str:
    import torch

    for value in vars(module).values():
        if isinstance(value, torch.nn.Module):
            return next(value.parameters()).device.type
    return "?"


def _faces(data: Path, split: str) -> tuple[list[str], list[np.ndarray]]:
    from celebface.data import open_dataset
    from celebface.io import read_image

    items = open_dataset(data, split).items
    return [str(it.path) for it in items], [read_image(it.path).rgb for it in items]


def stage_devices(paths: list[str], images: list[np.ndarray], gpu: str = "cuda") -> dict:
    """Finder + embedder on each device: where they ran, time, and the CPU/GPU agreement."""
    import torch

    from celebface.detection import get_finder
    from celebface.recognition import EmbedderSpec

    out: dict = {}
    found: dict = {}
    for device in ("cpu", gpu):
        finder = get_finder(device=device)
        embedder = EmbedderSpec("dlib").build(device)
        finder.find_batch(images[:2])  # build and warm up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        faces = finder.find_batch(images)
        t1 = time.perf_counter()
        located = finder.locate(images, rule="auto")
        vectors = np.asarray(embedder.embed(images, located), np.float32)
        t2 = time.perf_counter()
        found[device] = (faces, vectors)
        out[device] = {"detector_on": _device_of(finder.detector),
                       "embedder_on": str(getattr(embedder, "device", "?")),
                       "detect_s": round(t1 - t0, 3), "locate_embed_s": round(t2 - t1, 3),
                       "faces": sum(len(f) for f in faces)}
    (fc, vc), (fg, vg) = found["cpu"], found[gpu]
    same_count = sum(len(a) == len(b) for a, b in zip(fc, fg, strict=True))
    box_diff = max((float(np.abs(np.subtract(x.box, y.box)).max())
                    for a, b in zip(fc, fg, strict=True) if len(a) == len(b)
                    for x, y in zip(a, b, strict=True)), default=0.0)
    cos = (vc * vg).sum(1) / (np.linalg.norm(vc, axis=1) * np.linalg.norm(vg, axis=1))
    out["agreement"] = {"photos": len(paths), "same_face_count": same_count,
                        "max_box_diff_px": round(box_diff, 3),
                        "min_cosine_cpu_vs_gpu": round(float(cos.min()), 6)}
    return out


def surfaces(data: Path, work: Path, paths: list[str], gpu: str = "cuda") -> dict:
    """Enrol on the GPU; then the same val photos through the facade (CPU and GPU), the
    service and the CLI on the GPU: the same names."""
    from fastapi.testclient import TestClient

    import celebface
    from celebface.serve.app import create_app
    from celebface.serve.config import ServeConfig

    gallery = work / "gallery"
    celebface.enroll(data, gallery, split="train", device=gpu)
    facade = {d: [[(f.identity, round(float(f.similarity), 4)) for f in
                   celebface.recognize(p, gallery, device=d)] for p in paths]
              for d in ("cpu", gpu)}
    with TestClient(create_app(ServeConfig(gallery=gallery, device=gpu, workers=1)),
                    base_url="http://localhost") as client:
        service = []
        for p in paths:
            r = client.post("/v1/recognize", files={"image": (Path(p).name,
                                                              Path(p).read_bytes())})
            service.append([(f["identity"], round(float(f["similarity"]), 4))
                            for f in r.json()["faces"]])
    jsonl = work / "cli.jsonl"
    subprocess.run([sys.executable, "-m", "celebface.cli.main", "recognize", *paths,
                    "--gallery", str(gallery), "--device", gpu, "--jsonl", str(jsonl)],
                   check=True, capture_output=True)
    cli: dict[str, list] = {}
    for line in jsonl.read_text().splitlines():
        rec = json.loads(line)
        src = rec.get("source") or rec.get("path") or rec.get("input")
        cli.setdefault(src, []).extend(
            (f["identity"], round(float(f["similarity"]), 4)) for f in rec.get("faces", []))
    names = lambda rows: [[n for n, _ in r] for r in rows]  # noqa: E731
    cli_rows = [cli.get(p, []) for p in paths]
    sims = [abs(a[1] - b[1]) for ra, rb in zip(facade["cpu"], facade[gpu], strict=True)
            if len(ra) == len(rb) for a, b in zip(ra, rb, strict=True)]
    truth = [Path(p).parent.name for p in paths]
    named = sum(any(n == t for n, _ in r) for r, t in zip(facade[gpu], truth, strict=True))
    return {"val_photos": len(paths), "named_correctly_gpu": named,
            "facade_cpu_eq_gpu_names": names(facade["cpu"]) == names(facade[gpu]),
            "max_similarity_diff_cpu_gpu": round(max(sims, default=0.0), 5),
            "service_eq_facade": service == facade[gpu],
            "service_vs_facade_first_diff": next(
                ([a, b] for a, b in zip(service, facade[gpu], strict=True) if a != b), None),
            "cli_eq_facade_names": names(cli_rows) == names(facade[gpu])}


def training(data: Path, work: Path, gpu: str = "cuda") -> dict:
    """A short face-resnet fine-tune on the GPU (it must run there and learn)."""
    out = work / "face-resnet"
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "celebface.cli.main", "train", str(data),
                        "--model", "face-resnet", "--device", gpu, "--epochs", "3",
                        "--out", str(out), "--workers", "0"], capture_output=True, text=True)
    took = time.perf_counter() - t0
    if r.returncode:
        return {"ok": False, "exit": r.returncode, "stderr": r.stderr[-2000:]}
    history = json.loads((out / "history.json").read_text()) if (
        out / "history.json").is_file() else {}
    return {"ok": True, "seconds": round(took, 1), "history_keys": sorted(history)[:8],
            "stdout_tail": r.stdout[-600:]}


def main() -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path,
                    default=Path(__file__).resolve().parents[1] / "examples" / "five_celeb")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--gpu", default="cuda", help="the device compared with the CPU (cpu: a "
                    "dry run of this script on a machine without a GPU)")
    ap.add_argument("--skip-training", action="store_true")
    args = ap.parse_args()
    gpu = args.gpu
    if gpu == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU", file=sys.stderr)
        return 2
    report: dict = {"gpu": torch.cuda.get_device_name(0) if gpu == "cuda" else gpu,
                    "torch": torch.__version__}
    paths, images = _faces(args.data, "val")
    all_paths, all_images = _faces(args.data, "train")
    report["stages"] = stage_devices(all_paths + paths, all_images + images, gpu)
    with tempfile.TemporaryDirectory() as tmp:
        report["surfaces"] = surfaces(args.data, Path(tmp), paths, gpu)
        if not args.skip_training:
            report["training"] = training(args.data, Path(tmp), gpu)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    lines = [f"# GPU check ({report['gpu']}, torch {report['torch']})", "",
             "`python benchmarks/gpu_check.py --data examples/five_celeb`", "",
             "```json", json.dumps(report, indent=2), "```", ""]
    (args.out / "gpu_check.md").write_text("\n".join(lines))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
