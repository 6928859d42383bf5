"""`mmkit serve` under load: a fixed number of POST /classify requests at a fixed concurrency, on loopback.

The server runs as its own process (`python -m mmkit serve --host 127.0.0.1 --port P --threads T`, the default
ImageNet EfficientNet-Lite0 and MTCNN loaded), so that the client's event loop does not share its interpreter.
The client (httpx, asyncio) sends the coffee photo (600×400 JPEG, 80 kB) ``--requests`` times, at most
``--concurrency`` in flight, after ``--warmup`` untimed requests. Latency is from sending a request to reading its
whole answer; requests/s is the number of requests over the wall time of the whole timed run. Every answer must be
200 with "espresso" first: the script fails on any error.

    .venv/bin/python bench/serve_load.py [--requests 200] [--concurrency 16] [--threads 2] [--quick]
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import skimage.data
from common import base_parser, environment, print_table, save_result
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, threads: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mmkit", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--threads", str(threads), "--device", "cpu"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with code {proc.returncode}:\n{proc.stderr.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not answer /health within 120 s")


async def run_load(
    url: str, image: bytes, requests: int, concurrency: int
) -> tuple[list[float], list[str], float]:
    """Latencies (s) of the successful requests, the errors, and the wall time of the whole run."""
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    errors: list[str] = []
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def one(i: int) -> None:
            async with gate:
                t0 = time.perf_counter()
                try:
                    r = await client.post(
                        "/classify", files={"file": (f"coffee{i}.jpg", image, "image/jpeg")}
                    )
                    ok = r.status_code == 200 and r.json()["top"][0]["label"] == "espresso"
                    if not ok:
                        errors.append(f"request {i}: {r.status_code} {r.text[:200]}")
                        return
                except httpx.HTTPError as e:
                    errors.append(f"request {i}: {type(e).__name__}: {e}")
                    return
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(requests)))
        wall = time.perf_counter() - start
    return latencies, errors, wall


def main() -> None:
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--warmup", type=int, default=4)
    args = p.parse_args()
    requests = 32 if args.quick else args.requests
    buf = io.BytesIO()
    Image.fromarray(skimage.data.coffee()).save(buf, "JPEG", quality=92)
    image = buf.getvalue()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env = environment("cpu", args.threads)
    port = free_port()
    proc = start_server(port, args.threads)
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(run_load(url, image, args.warmup, min(args.warmup, args.concurrency)))
        latencies, errors, wall = asyncio.run(run_load(url, image, requests, args.concurrency))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    lat_ms = np.array(latencies) * 1000
    result = {
        "requests": requests,
        "concurrency": args.concurrency,
        "errors": len(errors),
        "p50_ms": round(float(np.percentile(lat_ms, 50)), 1) if len(lat_ms) else None,
        "p99_ms": round(float(np.percentile(lat_ms, 99)), 1) if len(lat_ms) else None,
        "mean_ms": round(float(lat_ms.mean()), 1) if len(lat_ms) else None,
        "max_ms": round(float(lat_ms.max()), 1) if len(lat_ms) else None,
        "requests_per_s": round(requests / wall, 2),
        "wall_s": round(wall, 2),
    }
    print_table(
        ["endpoint", "requests", "concurrency", "errors", "p50 ms", "p99 ms", "max ms", "req/s"],
        [
            [
                "/classify (600×400 JPEG)",
                requests,
                args.concurrency,
                len(errors),
                result["p50_ms"],
                result["p99_ms"],
                result["max_ms"],
                result["requests_per_s"],
            ]
        ],
        title=f"mmkit serve on loopback, {env['device']}, {args.threads} torch threads",
        quick=args.quick,
    )
    save_result(
        "serve_load",
        env,
        quick=args.quick,
        settings={
            "endpoint": "/classify",
            "image": "skimage coffee 600x400 JPEG q92",
            "image_bytes": len(image),
            "warmup": args.warmup,
            "server": "python -m mmkit serve (uvicorn, one process), efficientnet_lite0 imagenet + MTCNN loaded",
        },
        result=result,
        first_errors=errors[:5],
    )
    if errors:
        raise SystemExit(f"{len(errors)} of {requests} requests failed; first: {errors[0]}")


if __name__ == "__main__":
    main()
