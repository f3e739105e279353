"""Training with tokenizers the project did not make: Marian/OPUS-MT, T5-style, BERT-style WordPiece, SentencePiece.

Each is built here from the bundled corpus (nothing downloaded), a tiny model trains a few
updates on it through the training entry point, and the saved model translates with it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sentencepiece
from hub_server import last_json_line, run_python
from test_training import REPO, run_script, tiny_config, write_config
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer, MarianTokenizer, PreTrainedTokenizerFast

from hf_attn.data import load_bible_corpus
from hf_attn.generation import translate
from hf_attn.tokenization import check_tokenizer_matches_config, load_tokenizer, model_settings_from_tokenizer
from hf_attn.training.loop import train

VOCAB_SIZE = 400
SENTENCE = "In the beginning God created the heaven and the earth."


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> Path:
    """Source and target lines of the first verses of the real training split, one per line."""
    path = tmp_path_factory.mktemp("corpus") / "texts.txt"
    rows = load_bible_corpus()["train"].select(range(1500))
    path.write_text("".join(f"{row['source']}\n{row['target']}\n" for row in rows), encoding="utf-8")
    return path


def train_sentencepiece(texts: Path, prefix: Path, **ids: int) -> Path:
    sentencepiece.SentencePieceTrainer.train(
        input=str(texts), model_prefix=str(prefix), vocab_size=VOCAB_SIZE, minloglevel=2, num_threads=1, **ids
    )
    return prefix.with_suffix(".model")


def marian_tokenizer(texts: Path, folder: Path) -> Path:
    """OPUS-MT's layout: </s>=0, <unk>=1, no <s>, <pad> the last id; source.spm/target.spm/vocab.json."""
    spm = train_sentencepiece(texts, folder / "spm", eos_id=0, unk_id=1, bos_id=-1, pad_id=-1)
    processor = sentencepiece.SentencePieceProcessor(model_file=str(spm))
    vocab = {processor.id_to_piece(index): index for index in range(processor.get_piece_size())}
    vocab["<pad>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    for name in ("source.spm", "target.spm"):
        shutil.copy(spm, folder / name)
    tokenizer = MarianTokenizer(
        source_spm=str(folder / "source.spm"), target_spm=str(folder / "target.spm"), vocab=str(folder / "vocab.json")
    )
    tokenizer.save_pretrained(folder / "saved")
    return folder / "saved"


def backend_from(model: models.Model, trainer: trainers.Trainer, texts: Path) -> Tokenizer:
    backend = Tokenizer(model)
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.train([str(texts)], trainer)
    return backend


def t5_style_tokenizer(texts: Path, folder: Path) -> Path:
    """T5's ids: <pad>=0, </s>=1, <unk>=2, no <s> (the decoder starts from pad), </s> appended by a template."""
    backend = backend_from(
        models.Unigram(), trainers.UnigramTrainer(vocab_size=VOCAB_SIZE, special_tokens=["<pad>", "</s>", "<unk>"],
                                                  unk_token="<unk>"), texts
    )  # fmt: skip
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    backend.decoder = decoders.Metaspace()
    PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    ).save_pretrained(folder)
    return folder


def bert_style_tokenizer(texts: Path, folder: Path, eos_token: str | None = "[SEP]") -> Path:
    """WordPiece with [PAD]=0 … [CLS] text [SEP]; BERT has no eos, so the folder names [SEP] as it."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.train([str(texts)], trainers.WordPieceTrainer(vocab_size=VOCAB_SIZE, special_tokens=specials))
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    backend.decoder = decoders.WordPiece()
    special = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]"}
    if eos_token:
        special["eos_token"] = eos_token
    PreTrainedTokenizerFast(tokenizer_object=backend, **special).save_pretrained(folder)
    return folder


def sentencepiece_model(texts: Path, folder: Path) -> Path:
    """A plain SentencePiece .model (unigram), with a pad piece; hf_attn appends the eos it does not."""
    return train_sentencepiece(texts, folder / "plain", pad_id=3, unk_id=0, bos_id=1, eos_id=2)


TOKENIZERS = {
    "marian": marian_tokenizer,
    "t5-style": t5_style_tokenizer,
    "bert-wordpiece": bert_style_tokenizer,
    "sentencepiece-model": sentencepiece_model,
}
EXPECTED_IDS = {  # pad, bos, eos, decoder start
    "marian": (VOCAB_SIZE, None, 0, VOCAB_SIZE),
    "t5-style": (0, None, 1, 0),
    "bert-wordpiece": (0, None, 3, 0),
    "sentencepiece-model": (3, 1, 2, 1),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(TOKENIZERS))
def test_a_tiny_model_trains_and_translates_with_the_tokenizer(kind, texts, tmp_path):
    (tmp_path / "tok").mkdir()
    location = TOKENIZERS[kind](texts, tmp_path / "tok")
    tokenizer = load_tokenizer(location)
    settings = model_settings_from_tokenizer(tokenizer)
    ids = tuple(settings[f"{role}_token_id"] for role in ("pad", "bos", "eos", "decoder_start"))
    assert ids == EXPECTED_IDS[kind]
    assert tokenizer(SENTENCE)["input_ids"][-1] == tokenizer.eos_token_id

    config = tiny_config(
        "transformer_seq2seq", tmp_path / "run", location, max_steps=3, save_every=3, eval_every=100, eval_examples=4
    )
    if kind == "sentencepiece-model":  # once through the command line, as a user runs it
        run_script([sys.executable, "scripts/train.py", str(write_config(config, tmp_path / "c.json"))])
    else:
        train(config)

    best = tmp_path / "run" / "best"
    model, reloaded = AutoModelForSeq2SeqLM.from_pretrained(best), AutoTokenizer.from_pretrained(best)
    check_tokenizer_matches_config(reloaded, model.config)
    assert model.config.vocab_size == len(tokenizer)
    assert reloaded.model_max_length == model.config.max_position_embeddings  # the model's limit, not 512
    assert reloaded(SENTENCE)["input_ids"] == tokenizer(SENTENCE)["input_ids"]  # eos saved with it
    generated = model.generate(**reloaded([SENTENCE], return_tensors="pt"), max_new_tokens=6, num_beams=1)
    assert generated[0, 0].item() == EXPECTED_IDS[kind][3]
    [hypothesis] = translate(model, reloaded, [SENTENCE], num_beams=2, max_new_tokens=6)
    assert isinstance(hypothesis, str) and reloaded.pad_token not in hypothesis


def test_a_tokenizer_without_eos_is_named_with_the_fix(texts, tmp_path):
    folder = bert_style_tokenizer(texts, tmp_path / "bert", eos_token=None)
    with pytest.raises(ValueError, match=r"has no eos_token.*add_special_tokens\({'eos_token': '</s>'}\)"):
        load_tokenizer(folder)
    spm = train_sentencepiece(texts, tmp_path / "nopad")  # sentencepiece's default: no pad piece
    with pytest.raises(ValueError, match=r"SentencePiece model .*nopad.model has no pad_token"):
        load_tokenizer(spm)


def test_a_tokenizer_that_does_not_fit_the_model_is_refused_naming_both(texts, tmp_path):
    t5 = load_tokenizer(t5_style_tokenizer(texts, tmp_path / "t5"))
    bert = load_tokenizer(bert_style_tokenizer(texts, tmp_path / "bert"))
    config = AutoConfig.for_model("rnn_seq2seq", **model_settings_from_tokenizer(t5))
    with pytest.raises(
        ValueError, match=r"does not match the model config: config.eos_token_id is 1 but the tokenizer needs 3"
    ):
        check_tokenizer_matches_config(bert, config)


def test_translating_an_over_long_input_warns_once_with_the_models_limit(tmp_path):
    """transformers' tokenizer-limit warning (512) must not appear beside the model's own truncation warning."""
    code = f"""
import logging, sys
sys.path.insert(0, {str(REPO / "tests")!r})
from tiny_seq2seq import small_tokenizer, tiny_model
from hf_attn.generation import translate
logging.basicConfig(level=logging.WARNING)
tokenizer = small_tokenizer()
assert tokenizer.model_max_length == 512
model = tiny_model("transformer_seq2seq", max_position_embeddings=24)
translate(model, tokenizer, [" ".join([{SENTENCE!r}] * 60)], num_beams=1, max_new_tokens=2)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if "longer than" in line or "exceed" in line]
    assert len(warnings) == 1, result.stderr
    assert "the model's limit of 24 tokens" in warnings[0]


def test_a_tokenizer_from_the_hub_gives_the_model_its_ids(local_hub, texts, tmp_path):
    """`tokenizer: owner/name` goes through the Hub (here the project's local stand-in) like a folder does."""
    folder = t5_style_tokenizer(texts, tmp_path / "t5")
    script = f"""
import json
from huggingface_hub import HfApi
from hf_attn.tokenization import load_tokenizer, model_settings_from_tokenizer
api = HfApi(token={local_hub.token!r})
api.create_repo("user/t5-style")
api.upload_folder(folder_path={str(folder)!r}, repo_id="user/t5-style")
tokenizer = load_tokenizer("user/t5-style")
print(json.dumps({{**model_settings_from_tokenizer(tokenizer), "ids": tokenizer({SENTENCE!r})["input_ids"]}}))
"""
    loaded = last_json_line(run_python(script, local_hub.env, cwd=tmp_path))
    local = load_tokenizer(folder)
    assert loaded["ids"] == local(SENTENCE)["input_ids"] and loaded["ids"][-1] == 1
    assert {key: loaded[key] for key in ("vocab_size", "pad_token_id", "eos_token_id", "decoder_start_token_id")} == {
        "vocab_size": VOCAB_SIZE, "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0
    }  # fmt: skip
    assert loaded["bos_token_id"] is None
