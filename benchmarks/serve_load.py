"""Load test of ``celebface serve`` on loopback: throughput, latency, errors, memory.

Starts ``celebface serve`` (a gallery of five_celeb: 3 train photos of each of its 5 people,
built once into ``--work``) on a free 127.0.0.1 port and warms it up with one pass over the
photos. Then, for each number in ``--clients``, that many client threads post five_celeb's
held-out (val) photos to ``/v1/recognize`` (raw bodies, keep-alive connections) until
``--requests`` answers or ``--seconds`` have passed, whichever comes first. A ``503`` (the
server's queue is full) is counted apart from errors and the client waits its ``Retry-After``
(at most 1 s) before the next request. Reports requests/s, latency percentiles of the answered
requests, 503s, other errors, and the server's resident memory (start, every 2 s, end); then
stops the server with SIGTERM and checks it exits cleanly (``celebface serve`` exits 143 =
128 + SIGTERM after "Application shutdown complete"). Writes ``serve.md`` and ``serve.json`` to
``--out``; the gallery and the server's log go to ``--work`` (a temporary folder by default).
Only loopback traffic.

    .venv/bin/python benchmarks/serve_load.py --out DIR [--clients 1,8,32] [--requests 300]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from celebface.io import atomic_write_json, atomic_write_text, read_splits

ROOT = Path(__file__).resolve().parents[1]
FIVE = ROOT / "examples" / "five_celeb"
#: exit statuses of a clean stop by SIGTERM: the CLI's 128 + 15, or the signal itself
CLEAN_EXITS = (0, 128 + signal.SIGTERM, -signal.SIGTERM)


def build_gallery(work: Path) -> Path:
    gallery = work / "gallery"
    if (gallery / "gallery.json").is_file():
        return gallery
    splits = read_splits(FIVE / "splits.csv")
    for person in sorted(p.name for p in FIVE.iterdir() if p.is_dir()):
        (work / "data" / person).mkdir(parents=True, exist_ok=True)
        names = sorted(f for (i, f), s in splits.items() if i == person and s == "train")[:3]
        for name in names:
            link = work / "data" / person / name
            if not link.exists():
                link.symlink_to(FIVE / person / name)
    subprocess.run([sys.executable, "-m", "celebface.cli.main", "-q", "enroll",
                    str(work / "data"), "--out", str(gallery), "--device", "cpu",
                    "--max-side", "640"], check=True)
    return gallery


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, bytes, str | None]:
    conn.request("POST", "/v1/recognize", body=body,
                 headers={"Content-Type": "application/octet-stream"})
    r = conn.getresponse()
    return r.status, r.read(), r.getheader("Retry-After")


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("server did not start")


def load(port: int, photos: list[bytes], clients: int, requests: int, seconds: float,
         pid: int) -> dict:
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    busy: list[float] = []
    faces: list[int] = []
    sent = 0
    stop_at = time.monotonic() + seconds

    def client(k: int) -> None:
        nonlocal sent
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while time.monotonic() < stop_at:
            with lock:
                if sent >= requests:
                    break
                i = sent
                sent += 1
            t0 = time.perf_counter()
            try:
                status, body, retry_after = post(conn, photos[i % len(photos)])
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                continue
            dt = time.perf_counter() - t0
            with lock:
                if status == 200:
                    latencies.append(dt)
                    faces.append(len(json.loads(body)["faces"]))
                elif status == 503:
                    busy.append(dt)
                else:
                    errors.append(f"HTTP {status}: {body[:200]!r}")
            if status == 503:
                time.sleep(min(1.0, float(retry_after or 1)))
        conn.close()

    memory = [(0.0, rss_mb(pid))]
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(2.0)
        memory.append((round(time.perf_counter() - start, 1), rss_mb(pid)))
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    memory.append((round(wall, 1), rss_mb(pid)))
    ms = np.asarray(latencies) * 1000
    return {
        "clients": clients, "requests": len(latencies) + len(errors) + len(busy),
        "ok": len(latencies), "busy_503": len(busy),
        "busy_ms_p50": round(float(np.median(busy)) * 1000, 1) if busy else None,
        "errors": len(errors), "error_samples": errors[:5], "seconds": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 2),
        "latency_ms": {q: round(float(np.percentile(ms, p)), 1) for q, p in
                       (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))} if len(ms) else {},
        "faces_per_request": round(float(np.mean(faces)), 2) if faces else 0,
        "rss_mb": {"start": round(memory[0][1], 1), "end": round(memory[-1][1], 1),
                   "max": round(max(m for _, m in memory), 1)},
        "rss_samples": [(t, round(m, 1)) for t, m in memory],
    }


def write(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "serve.json", result)
    runs, down = result["runs"], result["shutdown"]
    lines = [
        "# `celebface serve` load test (loopback)", "",
        f"Machine: {result['machine']}, 1-minute load average {result['load_before']} before "
        "the run (other jobs share it: absolute numbers move with that).", "",
        f"Server: `{result['server_command']}` ({result['workers']} inference workers, "
        f"gallery of {result['gallery']}), warmed up with one pass over the photos. Each row: "
        f"that many client threads posting the {result['photos']} held-out five_celeb photos "
        f"(about 300x300 px, {runs[0]['faces_per_request']} faces each on average) in turn to "
        f"`/v1/recognize`, keep-alive; stop at {result['limits']['requests']} requests or "
        f"{result['limits']['seconds']} s. A 503 (queue full: more than workers + "
        f"`--queue` requests in the server) is counted apart; that client then waits the "
        "`Retry-After` (at most 1 s). Latencies are of the answered (200) requests.", "",
        "| clients | requests | 200 | 503 | other errors | seconds | answered/s | p50 ms | "
        "p90 ms | p99 ms | max ms | 503 p50 ms | RSS start MB | RSS end MB | RSS max MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lat, mem = r["latency_ms"], r["rss_mb"]
        lines.append(
            f"| {r['clients']} | {r['requests']} | {r['ok']} | {r['busy_503']} | {r['errors']} | "
            f"{r['seconds']} | {r['requests_per_s']} | {lat.get('p50')} | {lat.get('p90')} | "
            f"{lat.get('p99')} | {lat.get('max')} | {r['busy_ms_p50']} | {mem['start']} | "
            f"{mem['end']} | {mem['max']} |")
    lines.append("")
    for r in runs:
        lines += [f"RSS samples, {r['clients']} client(s) (s, MB): "
                  + ", ".join(f"{t:g}: {m:g}" for t, m in r["rss_samples"]), ""]
    lines += [
        f"Shutdown: SIGTERM -> {'clean' if down['clean'] else 'NOT clean'} (\"Application "
        f"shutdown complete\", exit status {down['exit_code']}: 143 = 128 + SIGTERM is the "
        f"CLI's clean stop) in {down['seconds']} s.", "",
        f"Command: `{result['command']}`", "",
    ]
    atomic_write_text(out / "serve.md", "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True,
                    help="folder for serve.md and serve.json (benchmarks/results for the "
                    "tracked ones)")
    ap.add_argument("--clients", default="1,8,32", help="client counts, one run each")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--work", type=Path, default=None,
                    help="gallery and server log (default: a temporary folder)")
    ap.add_argument("--server-args", default="", help="extra `celebface serve` flags")
    args = ap.parse_args()
    if args.work is None:
        args.work = Path(tempfile.mkdtemp(prefix="celebface-serve-load-"))
    gallery = build_gallery(args.work)
    splits = read_splits(FIVE / "splits.csv")
    val = sorted((i, f) for (i, f), s in splits.items() if s == "val")
    photos = [(FIVE / i / f).read_bytes() for i, f in val]
    port = free_port()
    cmd = [sys.executable, "-m", "celebface.cli.main", "serve", str(gallery), "--port",
           str(port), "--device", "cpu", *args.server_args.split()]
    load_before = round(os.getloadavg()[0], 2)
    args.work.mkdir(parents=True, exist_ok=True)
    log = open(args.work / "server.log", "w")  # noqa: SIM115 - open for the server's lifetime
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(port, proc)
        load(port, photos, 2, len(photos), args.seconds, proc.pid)  # warm-up: every photo once
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        health = json.loads((conn.request("GET", "/health"), conn.getresponse().read())[1])
        conn.close()
        runs = [load(port, photos, int(c), args.requests, args.seconds, proc.pid)
                for c in args.clients.split(",")]
    finally:
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "killed after 60 s"
        stop_s = round(time.perf_counter() - t0, 2)
        log.close()
    server_log = (args.work / "server.log").read_text(errors="replace")
    # uvicorn drains, runs the shutdown (which waits for the worker pool), then re-raises
    # SIGTERM, so a clean stop exits by that signal after "Application shutdown complete"
    clean = code in CLEAN_EXITS and "Application shutdown complete" in server_log
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "load_before": load_before,
        "server_command": "celebface serve GALLERY --device cpu " + args.server_args,
        "workers": health["workers"],
        "gallery": f"{health['identities']} people, {health['embeddings']} photos",
        "photos": len(photos), "limits": {"requests": args.requests, "seconds": args.seconds},
        "runs": runs, "shutdown": {"exit_code": code, "seconds": stop_s, "clean": clean},
        "command": "python benchmarks/serve_load.py " + " ".join(sys.argv[1:]),
    }
    write(result, args.out)
    for run in runs:
        print(json.dumps({k: run[k] for k in ("clients", "requests", "busy_503", "errors",
                                             "requests_per_s", "latency_ms", "rss_mb")}))
    if any(run["errors"] for run in runs) or not clean:
        print(server_log[-3000:], file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
