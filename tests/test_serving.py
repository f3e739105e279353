"""`hf-attn serve`: a real server on 127.0.0.1 (a subprocess), its API, its bad-input answers, SIGTERM, the page.

The page is checked in Debian's headless chromium through selenium (installed by .ci/run).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from tiny_seq2seq import save_tiny_model

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

SENTENCE = "In the beginning God created the heaven and the earth."


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(url: str, body: bytes | dict | None = None, method: str | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    headers = {"Content-Type": "application/json"} if data is not None else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers, method=method), timeout=120) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class Server:
    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "hf_attn.cli", "serve", *args, "--port", str(self.port), "--max-texts", "8"]
        self.process = subprocess.Popen(
            command,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.process.stderr.read()}")
            try:
                if request(self.url + "/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the server did not start within 120 s")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        finally:
            self.process.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    save_tiny_model("transformer_seq2seq", root / "transformer")
    save_tiny_model("rnn_seq2seq", root / "rnn")
    running = Server(str(root / "transformer"), str(root / "rnn"))
    yield running
    running.stop()


def test_translate_score_health_and_info(server):
    status, info = request(server.url + "/info")
    assert status == 200 and [m["model_type"] for m in info["models"]] == ["transformer_seq2seq", "rnn_seq2seq"]
    assert info["versions"]["transformers"] and info["models"][0]["engine"] == "torch"
    body = {"texts": [SENTENCE, "And God said"], "num_beams": 3, "n_best": 2, "alignment": "hard"}
    status, answer = request(server.url + "/translate", body)
    assert status == 200 and len(answer["results"]) == 2
    best, second = answer["results"][0]["translations"]
    assert best["score"] >= second["score"] and best["text"] and "-" in best["alignment"]
    status, answer = request(server.url + "/translate", {"texts": [SENTENCE], "model": "rnn", "alignment": "soft"})
    matrix = answer["results"][0]["translations"][0]["alignment"]
    assert status == 200 and len(matrix[0]) == len(answer["results"][0]["source_tokens"])
    status, answer = request(server.url + "/score", {"sources": [SENTENCE], "targets": ["Y"], "per_token": True})
    assert status == 200 and answer["results"][0]["log_prob"] < 0 and answer["results"][0]["token_log_probs"]


def test_concurrent_requests_each_get_their_own_answer(server):
    texts = [SENTENCE, "And God said", "Let there be light", "and there was light"] * 3
    answers: dict[int, dict] = {}

    def client(index: int) -> None:
        answers[index] = request(server.url + "/translate", {"texts": [texts[index]]})[1]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Batched together, yet each client gets the translation of its own source. (Outputs are not compared with
    # unbatched ones: an untrained model's near-tied logits flip under padding noise.)
    for index, text in enumerate(texts):
        assert answers[index]["results"][0]["source"] == text and answers[index]["results"][0]["translations"]
    status, stats = request(server.url + "/stats")
    transformer = stats["models"]["transformer"]
    assert status == 200 and transformer["texts"] >= len(texts) and transformer["batches"] <= transformer["texts"]
    assert transformer["largest_batch"] >= 1 and 0 < transformer["engine_busy"] <= 1


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"texts": []}, 422, "`texts` is empty"),
        ({"texts": [""]}, 422, "`texts[0]` is empty"),
        ({"texts": ["a" * 100_000]}, 413, "the limit is 2000 (max_chars)"),
        ({"texts": ["a"] * 9}, 413, "the limit is 8 per request (max_texts)"),
        ({"texts": "a sentence"}, 422, "texts: Input should be a valid list"),
        ({"texts": ["a"], "num_beams": "4"}, 422, "num_beams: Input should be a valid integer"),
        ({"texts": ["a"], "beams": 4}, 422, "beams: Extra inputs are not permitted"),
        ({"texts": ["a"], "num_beams": 2, "n_best": 3}, 422, "n_best (3) must not exceed num_beams (2)"),
        ({"texts": ["a"], "coverage_penalty": 0.2}, 422, "coverage_penalty is supported by the ctranslate2 engine"),
        ({"texts": ["a"], "alignment": "hard", "alignment_layer": 7}, 422, "alignment_layer 7 does not exist"),
        ({"texts": ["a"], "model": "nope"}, 422, "model 'nope' is not served here"),
        (b"not json", 422, "JSON decode error"),
        (b'{"texts": ["\xff\xfe"]}', 400, "error parsing the body"),  # not UTF-8
    ],
)
def test_bad_requests_are_4xx_with_a_message(server, body, status, message):
    got, answer = request(server.url + "/translate", body)
    assert (got, status) == (status, status) and message in answer["error"], answer
    assert request(server.url + "/health")[0] == 200  # and the server keeps serving


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "tensorflow"], "invalid choice: 'tensorflow'"),
        (["--engine", "ctranslate2"], "does not exist"),
        (["--engine", "torch"], "No model folder at"),
    ],
)
def test_bad_command_lines_are_errors_that_name_the_problem(tmp_path, args, message):
    missing = str(tmp_path / "no-such-model")
    run = subprocess.run(
        [sys.executable, "-m", "hf_attn.cli", "serve", missing, *args, "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and message in run.stderr


def test_sigterm_finishes_the_request_in_flight_and_exits_0(tmp_path):
    save_tiny_model("rnn_seq2seq", tmp_path / "rnn")
    server = Server(str(tmp_path / "rnn"))
    answers = []
    client = threading.Thread(
        target=lambda: answers.append(
            request(server.url + "/translate", {"texts": [SENTENCE] * 8, "num_beams": 8, "max_length_ratio": 4.0})
        )
    )
    client.start()
    time.sleep(0.5)  # the request is in flight
    assert server.stop() == 0
    client.join()
    assert answers and answers[0][0] == 200 and len(answers[0][1]["results"]) == 8


def _chrome():
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("Debian's chromium and chromium-driver are needed (.ci/run installs them with apt-get)")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    return webdriver.Chrome(options=options, service=service)


@pytest.mark.slow
def test_page_translates_and_draws_the_attention_in_a_real_browser(server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _chrome()
    try:
        browser.get(server.url + "/")
        wait = WebDriverWait(browser, 120)
        wait.until(lambda b: "Serving" in b.find_element(By.ID, "served").text)
        browser.find_element(By.ID, "source").send_keys(SENTENCE)
        browser.find_element(By.ID, "translate").click()
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "canvas.heatmap")) == 2)
        assert all(e.text for e in browser.find_elements(By.CSS_SELECTOR, ".translation"))
        assert len(browser.find_elements(By.CSS_SELECTOR, "#model-transformer li")) == 3  # the n-best list
        coloured = browser.execute_script(
            "return [...document.querySelectorAll('canvas.heatmap')].map(c => {"
            "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;"
            "for (let i = 0; i < d.length; i += 4) if (d[i + 2] > 200 && d[i] < 230) n++; return n; })"
        )
        assert all(count > 100 for count in coloured)  # attention cells drawn, not a blank canvas
        screenshot = os.environ.get("HF_ATTN_SCREENSHOT")
        if screenshot:
            browser.save_screenshot(screenshot)
        # A bad request (n-best over the beam) shows the server's message on the page.
        n_best = browser.find_element(By.ID, "n_best")
        n_best.clear()
        n_best.send_keys("9")
        browser.find_element(By.ID, "translate").click()
        wait.until(lambda b: "must not exceed num_beams" in b.find_element(By.ID, "error").text)
    finally:
        browser.quit()


def test_the_page_loads_nothing_from_another_host():
    page = (Path(__file__).resolve().parents[1] / "hf_attn" / "serving" / "static" / "index.html").read_text()
    assert "http://" not in page and "https://" not in page and "//cdn" not in page


def test_load_test_counts_requests_latencies_and_errors(server):
    from research.benchmark.load_test import run_clients

    row = run_clients(server.url, [SENTENCE, "And God said"], 2, 30.0, 4, 1, "two clients").row()
    assert row["requests"] == 4 and row["errors"] == 0 and row["sentences_per_s"] > 0
    assert 0 < row["p50_s"] <= row["p95_s"] <= row["p99_s"]
    broken = run_clients(server.url + "/missing", [SENTENCE], 1, 30.0, 2, 1, "wrong route").row()
    assert broken["errors"] == 2 and broken["requests"] == 0
