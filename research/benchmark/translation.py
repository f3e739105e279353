"""Translation throughput against what users deploy: one worker process per system, interleaved rounds.

Systems (beam 4, one thread each, the same real test verses, every hypothesis forced to
``new_tokens`` tokens so all produce the same tokens):

* MarianMTModel ``generate`` and Marian -> CTranslate2 int8 (the peer on the same engine), at
  our Transformer's size with untrained weights (speed does not depend on them);
* hf_attn's trained Transformer: ``generate``, and its ``hf-attn export`` to CTranslate2 fp32 and int8;
* hf_attn's trained RNN: ``generate`` in fp32 and from its ``torch-int8`` export.

Ratios are medians of tokens/s over the measured rounds, each against its baseline in the same run.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hf_attn.deploy import export_model
from hf_attn.inference import load_model_and_tokenizer

from .driver import WorkerProcess, interleaved
from .systems import SystemSpec

WORKER = str(Path(__file__).with_name("translation_worker.py"))
# key -> (label, baseline key for its ratio)
SYSTEMS = {
    "marian_generate": ("MarianMTModel generate (fp32)", "marian_generate"),
    "marian_ct2_int8": ("Marian -> CTranslate2 int8", "marian_generate"),
    "hf_attn_generate": ("hf_attn Transformer generate (fp32)", "marian_generate"),
    "hf_attn_ct2_fp32": ("hf_attn Transformer -> CTranslate2 fp32", "marian_generate"),
    "hf_attn_ct2_int8": ("hf_attn Transformer -> CTranslate2 int8", "marian_generate"),
    "rnn_generate": ("hf_attn RNN generate (fp32)", "rnn_generate"),
    "rnn_int8": ("hf_attn RNN torch-int8 generate", "rnn_generate"),
}


@dataclass
class TranslationBenchmarkSettings:
    transformer_dir: str
    rnn_dir: str
    work_dir: str
    sentences: int = 32
    batch_size: int = 32
    num_beams: int = 4
    new_tokens: int = 40
    rounds: int = 3
    warmup: int = 1
    threads: int = 1


def marian_peer(transformer_dir: Path, out_dir: Path) -> tuple[Path, Path, int]:
    """MarianMTModel at our Transformer's dimensions (pad last, as Marian has it) and its CTranslate2 int8 folder."""
    import ctranslate2
    from ctranslate2.converters.transformers import MarianMTLoader
    from transformers import MarianConfig, MarianMTModel

    model, tokenizer = load_model_and_tokenizer(transformer_dir)
    ours = model.config
    # Marian's vocabulary ends with its <pad> (the loader drops that row); ours has <pad> at id 0, renamed.
    tokens = ["<pad-0>", *tokenizer.convert_ids_to_tokens(list(range(1, ours.vocab_size))), "<pad>"]
    pad_id = len(tokens) - 1
    config = MarianConfig(
        vocab_size=len(tokens),
        decoder_vocab_size=len(tokens),
        d_model=ours.d_model,
        encoder_layers=ours.encoder_layers,
        decoder_layers=ours.decoder_layers,
        encoder_attention_heads=ours.encoder_attention_heads,
        decoder_attention_heads=ours.decoder_attention_heads,
        encoder_ffn_dim=ours.encoder_ffn_dim,
        decoder_ffn_dim=ours.decoder_ffn_dim,
        max_position_embeddings=ours.max_position_embeddings,
        pad_token_id=pad_id,
        decoder_start_token_id=pad_id,
        eos_token_id=ours.eos_token_id,
        forced_eos_token_id=None,
    )
    marian = MarianMTModel(config).eval()
    marian.save_pretrained(out_dir / "marian")

    class Vocabulary:  # what MarianMTLoader reads of a tokenizer
        eos_token, unk_token = tokenizer.eos_token, tokenizer.unk_token

        @staticmethod
        def get_vocab() -> dict[str, int]:
            return {token: index for index, token in enumerate(tokens)}

    class MarianConverter(ctranslate2.converters.Converter):
        def _load(self):
            return MarianMTLoader()(marian, Vocabulary())

    MarianConverter().convert(str(out_dir / "marian-ct2-int8"), quantization="int8", force=True)
    return out_dir / "marian", out_dir / "marian-ct2-int8", pad_id


def system_specs(settings: TranslationBenchmarkSettings) -> list[SystemSpec]:
    """Export what each system needs into the work folder; one spec per system, rows tokenized once."""
    work = Path(settings.work_dir)
    transformer, rnn = Path(settings.transformer_dir), Path(settings.rnn_dir)
    paths = {
        "hf_attn_generate": transformer,
        "hf_attn_ct2_fp32": export_model(transformer, work / "ct2-fp32", "ctranslate2", "float32"),
        "hf_attn_ct2_int8": export_model(transformer, work / "ct2-int8", "ctranslate2", "int8"),
        "rnn_generate": rnn,
        "rnn_int8": export_model(rnn, work / "rnn-int8", "torch-int8"),
    }
    paths["marian_generate"], paths["marian_ct2_int8"], marian_pad = marian_peer(transformer, work)
    from hf_attn.data import load_bible_corpus
    from hf_attn.tokenization import load_tokenizer

    tokenizer = load_tokenizer(transformer)
    rows = tokenizer(list(load_bible_corpus()["test"]["source"][: settings.sentences]))["input_ids"]
    common = {
        "rows": rows,
        "batch_size": settings.batch_size,
        "num_beams": settings.num_beams,
        "new_tokens": settings.new_tokens,
        "threads": settings.threads,
    }
    specs = []
    for key, (label, _) in SYSTEMS.items():
        engine = "ctranslate2" if "ct2" in key else "torch"
        spec = {**common, "engine": engine, "path": str(paths[key]), "loader": key.split("_")[0], "pad_id": marian_pad}
        specs.append(SystemSpec(key, label, key.split("_")[0], sys.executable, spec, worker=WORKER))
    return specs


def run_translation_benchmark(settings: TranslationBenchmarkSettings, progress=print) -> dict[str, Any]:
    """Measure every system in interleaved rounds; tokens/s, ratio to its baseline, peak RSS."""
    Path(settings.work_dir).mkdir(parents=True, exist_ok=True)
    workers = [WorkerProcess(spec, Path(settings.work_dir)) for spec in system_specs(settings)]
    try:
        for worker in workers:
            worker.info = worker.receive()
        answers = interleaved(workers, [{"op": "translate"}], settings.rounds, settings.warmup, progress)
        memory = {worker.key: worker.request({"op": "memory"})["peak_rss_mb"] for worker in workers}
    finally:
        for worker in workers:
            worker.close()
    speeds = {
        key: statistics.median(r[0]["tokens"] / r[0]["seconds"] for r in rounds) for key, rounds in answers.items()
    }
    tokens = {key: rounds[0][0]["tokens"] for key, rounds in answers.items()}
    rows = [
        {
            "system": key,
            "label": label,
            "tokens": tokens[key],
            "tokens_per_second": speeds[key],
            "baseline": baseline,
            "ratio": speeds[key] / speeds[baseline],
            "peak_rss_mb": memory[key],
        }
        for key, (label, baseline) in SYSTEMS.items()
    ]
    return {"settings": settings.__dict__, "rows": rows}


def format_table(result: dict[str, Any]) -> str:
    """The Markdown table of a run."""
    lines = ["| system | tokens/s | ratio | vs | peak RSS (MiB) |", "| --- | ---: | ---: | --- | ---: |"]
    for row in result["rows"]:
        lines.append(
            f"| {row['label']} | {row['tokens_per_second']:.0f} | {row['ratio']:.2f}x | {SYSTEMS[row['baseline']][0]} "
            f"| {row['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)
