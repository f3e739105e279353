"""One translation system of the translation benchmark, in its own process (started by path, like worker.py).

Every system translates the same source id rows with beam 4 and every hypothesis forced to
exactly ``new_tokens`` tokens, so each produces the same number of tokens and tokens/s compares
engines, not what the models happen to say. Answers one JSON line per command on stdout:
``{"op": "translate"}`` -> seconds and tokens; ``{"op": "memory"}`` -> peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from research.benchmark.worker import peak_rss_mb

Translate = Callable[[list[list[int]]], int]  # source id rows -> generated tokens


def torch_system(spec: dict[str, Any]) -> Translate:
    """``generate`` of a saved model folder: hf_attn's (fp32 or torch-int8 export) or MarianMTModel."""
    import torch

    torch.set_num_threads(spec["threads"])
    if spec["loader"] == "marian":
        from transformers import MarianMTModel

        model, pad_id = MarianMTModel.from_pretrained(spec["path"]).eval(), spec["pad_id"]
    else:
        from hf_attn.inference import load_model_and_tokenizer

        model, tokenizer = load_model_and_tokenizer(spec["path"])
        pad_id = tokenizer.pad_token_id

    def translate(rows: list[list[int]]) -> int:
        longest = max(map(len, rows))
        input_ids = torch.tensor([row + [pad_id] * (longest - len(row)) for row in rows])
        with torch.inference_mode():
            output = model.generate(
                input_ids=input_ids,
                attention_mask=(input_ids != pad_id).long(),
                num_beams=spec["num_beams"],
                min_new_tokens=spec["new_tokens"],
                max_new_tokens=spec["new_tokens"],
            )
        return output[:, 1:].numel()

    return translate


def ctranslate2_system(spec: dict[str, Any]) -> Translate:
    """CTranslate2's ``Translator`` on a converted folder (ours or Marian's), ids mapped through its vocabulary."""
    import ctranslate2

    folder = Path(spec["path"])
    vocabulary_file = next(folder / name for name in ("shared_vocabulary.json", "source_vocabulary.json"))
    vocabulary = json.loads(vocabulary_file.read_text(encoding="utf-8"))
    translator = ctranslate2.Translator(str(folder), device="cpu", intra_threads=spec["threads"], inter_threads=1)

    def translate(rows: list[list[int]]) -> int:
        results = translator.translate_batch(
            [[vocabulary[i] for i in row] for row in rows],
            beam_size=spec["num_beams"],
            min_decoding_length=spec["new_tokens"],
            max_decoding_length=spec["new_tokens"],
        )
        return sum(len(result.hypotheses[0]) for result in results)

    return translate


def serve(spec: dict[str, Any], answer: Callable[[dict[str, Any]], None]) -> None:
    translate = (ctranslate2_system if spec["engine"] == "ctranslate2" else torch_system)(spec)
    rows, batch_size = spec["rows"], spec["batch_size"]
    batches = [rows[start : start + batch_size] for start in range(0, len(rows), batch_size)]
    answer({"ready": True})
    for line in iter(sys.stdin.readline, ""):
        command = json.loads(line)
        if command["op"] == "exit":
            return
        if command["op"] == "memory":
            answer({"peak_rss_mb": peak_rss_mb()})
        else:
            began = time.perf_counter()
            tokens = sum(translate(batch) for batch in batches)
            answer({"seconds": time.perf_counter() - began, "tokens": tokens})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", required=True, help="the system's JSON spec, written by the driver")
    spec = json.loads(Path(parser.parse_args().spec).read_text(encoding="utf-8"))
    # Answers travel on the original stdout; anything else printing there (library logs) goes to stderr.
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    def answer(message: dict[str, Any]) -> None:
        channel.write(json.dumps(message) + "\n")

    try:
        serve(spec, answer)
    except Exception as error:  # the driver shows the worker's log; the protocol line says what failed
        answer({"error": f"{type(error).__name__}: {error}"})
        raise


if __name__ == "__main__":
    main()
