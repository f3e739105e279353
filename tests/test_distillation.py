"""hf-attn distill: a tiny MarianMTModel teacher with a tokenizer of its own, distilled into tiny students.

The teacher is a real ``MarianMTModel`` saved with a word-level ``PreTrainedTokenizerFast`` built
with ``tokenizers`` (not hf_attn's BPE), converted by CTranslate2's own converter; the students are
trained by the real loop, exported, evaluated and carded. Teacher outputs of an untrained model are
nonsense, which does not matter here: the tests check the plumbing, resumption and refusals.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest
import torch
from tiny_seq2seq import one_torch_thread, save_tiny_model, short_pairs  # noqa: F401  (fixture)
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import GPT2Config, GPT2LMHeadModel, MarianConfig, MarianMTModel, PreTrainedTokenizerFast

from hf_attn.cli import main
from hf_attn.distillation import DistillationSettings, load_teacher, run_distillation, translate_in_chunks
from hf_attn.distillation.chunks import chunk_path
from hf_attn.distillation.report import weights_megabytes

TINY_STUDENT = [
    "model.d_model=32",
    "model.encoder_layers=1",
    "model.decoder_layers=1",
    "model.encoder_attention_heads=2",
    "model.decoder_attention_heads=2",
    "model.encoder_ffn_dim=64",
    "model.decoder_ffn_dim=64",
    "vocab_size=700",
    "max_target_tokens=250",  # an untrained teacher's translations run to the length bound
    "max_tokens=1000",
    "max_steps=3",
    "warmup_steps=1",
    "eval_every=3",
    "eval_examples=4",
    "save_every=3",
    "log_every=1",
]
TINY_RNN_STUDENT = [
    "model.hidden_size=32",
    "model.embedding_size=32",
    *TINY_STUDENT[7:],
    "max_train_examples=8",  # the distilled pairs only (no mixing): training proves they are there
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Short Bible pairs as a saved DatasetDict (train 40, validation 6, test 6)."""
    folder = tmp_path_factory.mktemp("data") / "pairs"
    counts = {"train": 40, "validation": 6, "test": 6}
    columns = ["id", "source", "target"]
    splits = {split: short_pairs(split, count, max_words=15).select_columns(columns) for split, count in counts.items()}
    datasets.DatasetDict(splits).save_to_disk(str(folder))
    return folder


def word_tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer in Marian's layout: ``</s>`` 0, ``<unk>`` 1, words, ``<pad>`` last; appends ``</s>``."""
    vocab = {"</s>": 0, "<unk>": 1}
    for word in words:
        vocab.setdefault(word, len(vocab))
    vocab["<pad>"] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 0)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", unk_token="<unk>", pad_token="<pad>")


def save_marian_teacher(folder: Path, words: list[str], d_model: int = 16) -> Path:
    tokenizer = word_tokenizer(words)
    config = MarianConfig(
        vocab_size=len(tokenizer),
        d_model=d_model,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
        init_std=0.3,
    )
    torch.manual_seed(0)
    MarianMTModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def marian_teacher(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    corpus = datasets.load_from_disk(str(data_dir))
    words = sorted({word for split in corpus.values() for text in split["source"] for word in text.split()})
    words += sorted({word for split in corpus.values() for text in split["target"] for word in text.split()})
    return save_marian_teacher(tmp_path_factory.mktemp("teacher") / "marian", words)


def settings(teacher: Path, output_dir: Path, data_dir: Path, **changes) -> DistillationSettings:
    values = dict(
        teacher=str(teacher),
        output_dir=str(output_dir),
        data=str(data_dir),
        overrides=TINY_STUDENT,
        chunk_size=16,
        num_beams=2,
        eval_num_beams=2,
    )
    return DistillationSettings(**{**values, **changes})


def test_marian_teacher_distils_into_an_exported_transformer_student(
    marian_teacher: Path, data_dir: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    report = run_distillation(settings(marian_teacher, run, data_dir, mix_references=True))

    assert report["stages"]["teacher"]["engine"] == "ctranslate2"  # CTranslate2's converter took the Marian teacher
    assert report["stages"]["teacher"]["translated_chunks"] == 3  # 40 sources in chunks of 16
    chunks = [json.loads(chunk_path(run / "teacher_chunks", i).read_text()) for i in range(3)]
    hypotheses = [h for chunk in chunks for h in chunk["hypotheses"]]
    distilled = datasets.load_from_disk(str(run / "distilled"))
    kept = [h for h in hypotheses if h.strip()]
    # The teacher's translations, then the references (mixing); validation/test keep references.
    assert distilled["train"]["target"][: len(kept)] == kept
    assert len(distilled["train"]) == len(kept) + 40
    assert distilled["test"]["target"] == datasets.load_from_disk(str(data_dir))["test"]["target"]
    # The teacher speaks through its own word-level tokenizer: its outputs are its vocabulary's words.
    teacher_words = set(PreTrainedTokenizerFast.from_pretrained(str(marian_teacher)).get_vocab())
    assert kept and all(set(h.split()) <= teacher_words for h in kept)

    summary = json.loads((run / "student" / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["model_type"] == "transformer_seq2seq"
    assert json.loads((run / "exported" / "hf_attn_export.json").read_text())["quantization"] == "int8"
    for name, engine in (("teacher", "ctranslate2"), ("student", "generate"), ("exported_student", "ctranslate2")):
        metrics = json.loads((run / "eval" / name / "metrics.json").read_text())
        assert metrics["n"] == 6 and metrics["engine"] == engine
        assert report["models"][name]["bleu"] == metrics["bleu"]
    card = (run / "README.md").read_text()
    assert f"**`{marian_teacher}`**" in card and "## Distillation" in card and "(beam 2, on ctranslate2)" in card
    assert f"User data from `{data_dir}`.\n\nThe training targets are translations by the teacher" in card
    assert card == (run / "student" / "best" / "README.md").read_text()

    # Re-running the finished run redoes nothing: no chunk, no training, the same report.
    mtimes = {path: path.stat().st_mtime_ns for path in (run / "teacher_chunks").iterdir()}
    again = run_distillation(settings(marian_teacher, run, data_dir, mix_references=True))
    assert {path: path.stat().st_mtime_ns for path in (run / "teacher_chunks").iterdir()} == mtimes
    assert again["models"] == report["models"]


def test_hf_attn_teacher_distils_into_an_rnn_student_exported_to_torch_int8(data_dir: Path, tmp_path: Path) -> None:
    teacher = tmp_path / "teacher"
    save_tiny_model("transformer_seq2seq", teacher)
    run = tmp_path / "run"
    report = run_distillation(
        settings(teacher, run, data_dir, student="rnn_small", overrides=TINY_RNN_STUDENT, test_examples=4)
    )
    assert report["stages"]["teacher"]["engine"] == "ctranslate2"  # through hf-attn export's converter
    # The teacher row's size is the int8 CTranslate2 model that translated, not the fp32 folder it came from.
    assert report["models"]["teacher"]["megabytes"] == weights_megabytes(run / "teacher_engine")
    assert report["models"]["teacher"]["megabytes"] < weights_megabytes(teacher) / 2
    assert report["stages"]["export"]["format"] == "torch-int8"
    assert report["models"]["exported_student"]["engine"] == "torch-int8"
    assert report["models"]["student"]["n"] == 4


class _FailAfter:
    """Wraps a teacher's translate function; raises on call ``fail_at`` (a crash in the middle of the stage)."""

    def __init__(self, translate, fail_at: int | None = None) -> None:
        self.translate, self.fail_at, self.calls = translate, fail_at, 0

    def __call__(self, sources, **options):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("killed")
        return self.translate(sources, **options)


def test_a_killed_teacher_stage_resumes_without_redoing_finished_chunks(
    marian_teacher: Path, data_dir: Path, tmp_path: Path
) -> None:
    teacher = load_teacher(str(marian_teacher), tmp_path / "engine", engine="torch")
    sources = list(datasets.load_from_disk(str(data_dir))["train"]["source"])
    uninterrupted = translate_in_chunks(sources, teacher.translate_with_stats, tmp_path / "whole", chunk_size=8)

    chunks = tmp_path / "chunks"
    crashing = _FailAfter(teacher.translate_with_stats, fail_at=3)
    with pytest.raises(RuntimeError, match="killed"):
        translate_in_chunks(sources, crashing, chunks, chunk_size=8)
    finished = sorted(chunks.iterdir())
    assert [path.name for path in finished] == ["chunk-000000.json", "chunk-000001.json"]  # no partial file
    mtimes = {path: path.stat().st_mtime_ns for path in finished}

    resumed_translate = _FailAfter(teacher.translate_with_stats)
    resumed = translate_in_chunks(sources, resumed_translate, chunks, chunk_size=8)
    assert resumed_translate.calls == 3 and (resumed.reused_chunks, resumed.translated_chunks) == (2, 3)
    assert {path: path.stat().st_mtime_ns for path in finished} == mtimes
    assert resumed.hypotheses == uninterrupted.hypotheses  # nothing lost, nothing doubled


def test_an_rnn_teacher_translates_with_generate_unless_ctranslate2_is_demanded(tmp_path: Path) -> None:
    save_tiny_model("rnn_seq2seq", tmp_path / "rnn")
    teacher = load_teacher(str(tmp_path / "rnn"), tmp_path / "engine")
    assert (teacher.engine, teacher.model_type) == ("torch", "rnn_seq2seq")
    assert (
        len(
            teacher.translate_with_stats(
                ["In the beginning"], batch_size=1, num_beams=2, max_new_tokens=5, length_penalty=1.0, progress=False
            ).hypotheses
        )
        == 1
    )
    with pytest.raises(ValueError, match=r"teacher '.*rnn' cannot run on CTranslate2: CTranslate2 runs no RNN"):
        load_teacher(str(tmp_path / "rnn"), tmp_path / "engine", engine="ctranslate2")


def test_a_chunk_of_other_sources_is_refused(marian_teacher: Path, tmp_path: Path) -> None:
    teacher = load_teacher(str(marian_teacher), tmp_path / "engine", engine="torch")
    translate_in_chunks(["In the beginning"], teacher.translate_with_stats, tmp_path / "chunks", chunk_size=4)
    with pytest.raises(ValueError, match=r"chunk-000000\.json holds translations of other sources"):
        translate_in_chunks(["And God said"], teacher.translate_with_stats, tmp_path / "chunks", chunk_size=4)


def test_a_teacher_that_is_not_seq2seq_is_refused(data_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=50, n_positions=16)).save_pretrained(folder)
    with pytest.raises(ValueError, match=rf"teacher '{folder}' is a 'gpt2' model, not a sequence-to-sequence one"):
        run_distillation(settings(folder, tmp_path / "run", data_dir))
    assert not (tmp_path / "run").exists()


def test_a_teacher_whose_tokenizer_cannot_encode_the_data_is_refused(data_dir: Path, tmp_path: Path) -> None:
    teacher = save_marian_teacher(tmp_path / "other_language", ["hola", "mundo"])
    with pytest.raises(ValueError, match=r"tokenizer of teacher .*other_language' cannot encode the data: .*'<unk>'"):
        run_distillation(settings(teacher, tmp_path / "run", data_dir))


def test_an_unknown_student_preset_is_refused(marian_teacher: Path, data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no preset named 'transformer_tiniest'"):
        run_distillation(settings(marian_teacher, tmp_path / "run", data_dir, student="transformer_tiniest"))
    code = main(["distill", str(marian_teacher), "--output-dir", str(tmp_path / "run"), "--student", "nope"])
    assert code == 2


def test_an_output_dir_holding_another_run_is_refused(marian_teacher: Path, data_dir: Path, tmp_path: Path) -> None:
    from hf_attn.distillation.run import claim_output_dir

    run = tmp_path / "run"
    claim_output_dir(settings(marian_teacher, run, data_dir, num_beams=3))
    with pytest.raises(ValueError, match=rf"{run} holds another distillation run \(num_beams: 3 there, 2 now\)"):
        run_distillation(settings(marian_teacher, run, data_dir))
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=rf"{other} is not empty and holds no distill.json"):
        run_distillation(settings(marian_teacher, other, data_dir))


def test_student_overrides_may_not_move_the_data_or_the_run(marian_teacher: Path, data_dir: Path, tmp_path: Path):
    changed = settings(marian_teacher, tmp_path / "run", data_dir, overrides=["data=elsewhere"])
    with pytest.raises(ValueError, match=r"--set data=… is not allowed"):
        run_distillation(changed)
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_killing_the_teacher_stage_loses_nothing_and_the_restart_redoes_no_finished_chunk(
    data_dir: Path, tmp_path: Path
) -> None:
    """SIGKILL a real ``hf-attn distill`` process during the teacher stage, then resume the run."""
    corpus = datasets.load_from_disk(str(data_dir))
    words = sorted({word for text in corpus["train"]["source"] for word in text.split()})
    teacher = save_marian_teacher(tmp_path / "teacher", words, d_model=128)  # slow enough to be caught mid-stage
    run, chunks = tmp_path / "run", tmp_path / "run" / "teacher_chunks"
    arguments = ["--output-dir", str(run), "--data", str(data_dir), "--chunk-size", "1", "--num-beams", "4"]
    arguments += ["--teacher-engine", "torch", *(f"--set={override}" for override in TINY_STUDENT)]
    command = [sys.executable, "-m", "hf_attn.cli", "distill", str(teacher), *arguments]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(chunks.glob("chunk-*.json"))) < 3:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    finished = sorted(chunks.glob("chunk-*.json"))
    assert 3 <= len(finished) < 40, f"the teacher stage was not caught mid-run ({len(finished)} chunks)"
    before = {path: (path.stat().st_mtime_ns, path.read_text()) for path in finished}
    assert [json.loads(text)["index"] for _, text in before.values()] == list(range(len(finished)))  # whole files

    report = run_distillation(
        settings(teacher, run, data_dir, chunk_size=1, num_beams=4, teacher_engine="torch", eval_num_beams=4)
    )
    assert report["stages"]["teacher"]["reused_chunks"] == len(finished)
    assert report["stages"]["teacher"]["translated_chunks"] == 40 - len(finished)
    assert {path: (path.stat().st_mtime_ns, path.read_text()) for path in finished} == before
    assert sorted(path.name for path in chunks.iterdir()) == [f"chunk-{index:06d}.json" for index in range(40)]


def test_the_measurement_script_runs_both_arms_and_writes_the_table(data_dir: Path, tmp_path: Path) -> None:
    """research/distillation_experiment.py end to end on tiny models: distilled and reference students, one table."""
    from research.distillation_experiment import ExperimentSettings, run_experiment

    teacher = tmp_path / "reference" / "averaged"
    save_tiny_model("transformer_seq2seq", teacher)
    output = tmp_path / "experiment"
    results = run_experiment(
        ExperimentSettings(
            teacher=str(teacher),
            output_dir=str(output),
            students=("transformer_student",),
            data=str(data_dir),
            extra_overrides=tuple(TINY_STUDENT),
            steps=2,
            num_beams=2,
            threads=1,
            speed_rounds=2,
        )
    )
    runs = results["students"]["transformer_student"]
    speed = results["speed"]
    assert set(speed) == {"teacher", "transformer_student-distilled", "transformer_student-references"}
    assert speed["teacher"]["speedup_vs_teacher"] == 1.0
    assert all(row["median_seconds"] > 0 and row["sentences_per_second"] > 0 for row in speed.values())
    assert runs["distilled"]["models"]["student"]["n"] == runs["references"]["models"]["student"]["n"] == 6
    assert json.loads((Path(runs["references"]["run_dir"]) / "summary.json").read_text())["steps"] == 2
    assert results["teacher"]["generate"]["engine"] == "generate"
    table = (output / "results.md").read_text()
    assert table.count("| transformer_student |") == 4 and "| teacher (reference) | references | ctranslate2 |" in table
    exported_rows = [row for row in table.splitlines() if "| ctranslate2 |" in row]
    assert len(exported_rows) == 3 and all(row.split("|")[8].strip() != "n/a" for row in exported_rows)
