"""Sequence-level knowledge distillation (Kim & Rush 2016): a small, fast student from any seq2seq teacher.

``hf-attn distill`` is :func:`run_distillation`; each stage is also usable alone:
:func:`load_teacher` (any ``AutoModelForSeq2SeqLM`` with its own tokenizer, on CTranslate2 when it
converts), :func:`translate_in_chunks` (atomic, resumable), :func:`build_distilled_corpus` /
:func:`save_corpus`, :func:`student_config` / :func:`train_student` / :func:`export_student`,
:func:`evaluate_once` and :func:`write_distillation_card`.
"""

from .chunks import ChunkedTranslations, translate_in_chunks
from .corpus import build_distilled_corpus, save_corpus
from .report import evaluate_once, write_distillation_card
from .run import DistillationSettings, run_distillation
from .student import export_student, student_config, train_student
from .teacher import Teacher, check_tokenizer_encodes, load_teacher

__all__ = [
    "ChunkedTranslations",
    "DistillationSettings",
    "Teacher",
    "build_distilled_corpus",
    "check_tokenizer_encodes",
    "evaluate_once",
    "export_student",
    "load_teacher",
    "run_distillation",
    "save_corpus",
    "student_config",
    "train_student",
    "translate_in_chunks",
    "write_distillation_card",
]
