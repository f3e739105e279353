"""Load test of `hf-attn serve`: K concurrent clients for T seconds, against one-at-a-time serving and offline batches.

Each client holds one keep-alive connection (as an HTTP client library's session does) and
sends one sentence per request, in a loop, until the time or the request budget is spent. The
references are measured in the same run, at each thread count asked for (the best one is the
reference): a server that decodes one request at a time, and the same engine translating the
same sentences (the first 1,024) offline in length-sorted batches of 32 (what ``hf-attn translate`` does). Each
row also gives the CPU seconds of the server and of the client process (they share the cores),
and the batching server's own account of its batches (``GET /stats``).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass


@dataclass
class LoadResult:
    label: str
    sentences: int
    errors: int
    seconds: float
    latencies: list[float]
    client_cpu_s: float = 0.0

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
            "client_cpu_s": round(self.client_cpu_s, 1),
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


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc); 0.0 where /proc is unavailable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stream:
            fields = stream.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_clients(
    url: str, sentences: list[str], clients: int, seconds: float, max_requests: int, num_beams: int, label: str
) -> LoadResult:
    """``clients`` threads, each posting one sentence at a time until ``seconds`` or ``max_requests`` run out.

    A request counts as an error unless it is answered 200; after an error the client opens a
    new connection.
    """
    parts = urllib.parse.urlsplit(url)
    path = parts.path.rstrip("/") + "/translate"
    latencies: list[float] = []
    errors = [0]
    budget = [max_requests]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(offset: int) -> None:
        index = offset
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        while time.monotonic() < deadline:
            with lock:
                if budget[0] <= 0:
                    break
                budget[0] -= 1
            body = json.dumps({"texts": [sentences[index % len(sentences)]], "num_beams": num_beams})
            began = time.monotonic()
            try:
                connection.request("POST", path, body, {"Content-Type": "application/json"})
                answer = connection.getresponse()
                answer.read()
                ok = answer.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
            with lock:
                if ok:
                    latencies.append(time.monotonic() - began)
                else:
                    errors[0] += 1
            if not ok:
                connection.close()
                connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
            index += clients
        connection.close()

    began, cpu_began = time.monotonic(), time.process_time()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed, cpu = time.monotonic() - began, time.process_time() - cpu_began
    return LoadResult(label, len(latencies), errors[0], elapsed, latencies, cpu)


def offline_throughput(model: str, engine: str, sentences: list[str], num_beams: int, threads: int = 0) -> float:
    """Sentences/s of the engine translating ``sentences`` in length-sorted batches of 32 (``hf-attn translate``)."""
    from hf_attn.decoding import DecodingOptions
    from hf_attn.engines import load_engine

    loaded = load_engine(model, engine, threads=threads)
    loaded.decode(sentences[:8], DecodingOptions(num_beams=num_beams), batch_size=32)  # warm up
    began = time.perf_counter()
    loaded.decode(sentences, DecodingOptions(num_beams=num_beams), batch_size=32)
    return len(sentences) / (time.perf_counter() - began)


def _serve_and_load(
    model: str,
    engine: str,
    extra: list[str],
    sentences: list[str],
    clients: int,
    seconds: float,
    max_requests: int,
    num_beams: int,
    label: str,
) -> dict:
    """One server, ``clients`` clients; the row adds the server's CPU seconds and its /stats."""
    process, url = start_server(model, engine, extra)
    try:
        cpu_began = process_cpu_seconds(process.pid)
        row = run_clients(url, sentences, clients, seconds, max_requests, num_beams, label).row()
        row["server_cpu_s"] = round(process_cpu_seconds(process.pid) - cpu_began, 1)
        with urllib.request.urlopen(url + "/stats", timeout=30) as answer:
            (stats,) = json.loads(answer.read())["models"].values()
        row.update(mean_batch=stats["mean_batch"], engine_busy=stats["engine_busy"])
        return row
    finally:
        process.terminate()
        process.wait(timeout=60)


def load_test(
    model: str,
    engine: str,
    sentences: list[str],
    *,
    clients: int,
    seconds: float,
    max_requests: int,
    num_beams: int,
    batching: tuple[tuple[int, int], ...] = ((0, 1),),
    reference_threads: tuple[int, ...] = (0,),
) -> list[dict]:
    """Rows for each batching server (threads, parallel batches) and every reference, each with its two ratios.

    The ratios are against the best one-at-a-time server and the best offline run over ``reference_threads``.
    """
    rows, one_at_a_time, offline, batched = [], [], [], []
    for threads in reference_threads:
        label = f"one request at a time (max batch 1, threads {threads})"
        extra = ["--max-batch", "1", "--max-wait-ms", "0", "--threads", str(threads)]
        rows.append(_serve_and_load(model, engine, extra, sentences, clients, seconds, max_requests, num_beams, label))
        one_at_a_time.append(rows[-1]["sentences_per_s"])
    for threads, parallel in batching:
        label = f"dynamic batching ({clients} clients, threads {threads}, parallel batches {parallel})"
        extra = ["--threads", str(threads), "--parallel-batches", str(parallel)]
        rows.append(_serve_and_load(model, engine, extra, sentences, clients, seconds, max_requests, num_beams, label))
        batched.append(rows[-1])
    offline_sentences = sentences[:1024]
    for threads in reference_threads:
        rate = offline_throughput(model, engine, offline_sentences, num_beams, threads)
        rows.append({"setting": f"offline batches of 32 (threads {threads})", "sentences_per_s": round(rate, 2)})
        offline.append(rate)
    for row in batched:
        row["vs_one_at_a_time"] = round(row["sentences_per_s"] / max(one_at_a_time), 2)
        row["vs_offline"] = round(row["sentences_per_s"] / max(offline), 2)
    return rows
