"""Load test of `hf-attn serve`: K concurrent clients for T seconds, against one-at-a-time serving and offline batches.

Each client sends one sentence per request, in a loop, until the time or the request budget
is spent. The same sentences are then translated offline in batches (the engine's
``decode`` with batch 32), so the three throughputs are measured side by side in one run.
"""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass


@dataclass
class LoadResult:
    label: str
    sentences: int
    errors: int
    seconds: float
    latencies: list[float]

    def row(self) -> dict[str, float | str | int]:
        ordered = sorted(self.latencies) or [float("nan")]

        def quantile(q: float) -> float:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

        return {
            "setting": self.label,
            "sentences_per_s": round(self.sentences / self.seconds, 2),
            "p50_s": round(statistics.median(ordered), 3),
            "p95_s": round(quantile(0.95), 3),
            "p99_s": round(quantile(0.99), 3),
            "requests": len(self.latencies),
            "errors": self.errors,
        }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(model: str, engine: str, extra: list[str]) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    command = [sys.executable, "-m", "hf_attn.cli", "serve", model, "--engine", engine, "--port", str(port), *extra]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(url + "/health", timeout=5):
                return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not start")


def run_clients(
    url: str, sentences: list[str], clients: int, seconds: float, max_requests: int, num_beams: int, label: str
) -> LoadResult:
    """``clients`` threads, each posting one sentence at a time until ``seconds`` or ``max_requests`` run out."""
    latencies: list[float] = []
    errors = [0]
    budget = [max_requests]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(offset: int) -> None:
        index = offset
        while time.monotonic() < deadline:
            with lock:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            body = json.dumps({"texts": [sentences[index % len(sentences)]], "num_beams": num_beams}).encode()
            began = time.monotonic()
            try:
                request = urllib.request.Request(url + "/translate", body, {"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=60) as answer:
                    answer.read()
                with lock:
                    latencies.append(time.monotonic() - began)
            except (OSError, urllib.error.HTTPError):
                with lock:
                    errors[0] += 1
            index += clients

    began = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return LoadResult(label, len(latencies), errors[0], time.monotonic() - began, latencies)


def offline_throughput(model: str, engine: str, sentences: list[str], num_beams: int) -> float:
    """Sentences/s of the engine translating ``sentences`` in batches of 32 (what `hf-attn translate` does)."""
    from hf_attn.decoding import DecodingOptions
    from hf_attn.engines import load_engine

    loaded = load_engine(model, engine)
    began = time.perf_counter()
    loaded.decode(sentences, DecodingOptions(num_beams=num_beams), batch_size=32)
    return len(sentences) / (time.perf_counter() - began)


def load_test(
    model: str, engine: str, sentences: list[str], *, clients: int, seconds: float, max_requests: int, num_beams: int
) -> list[dict]:
    rows = []
    for label, extra, count in (
        ("one request at a time (max batch 1)", ["--max-batch", "1", "--max-wait-ms", "0"], clients),
        (f"dynamic batching ({clients} clients)", [], clients),
    ):
        process, url = start_server(model, engine, extra)
        try:
            rows.append(run_clients(url, sentences, count, seconds, max_requests, num_beams, label).row())
        finally:
            process.terminate()
            process.wait(timeout=60)
    rate = offline_throughput(model, engine, sentences[: max(64, min(len(sentences), 512))], num_beams)
    rows.append({"setting": "offline batches of 32", "sentences_per_s": round(rate, 2)})
    return rows
