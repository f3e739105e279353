"""Research tooling of the hf_attn repository, not part of the installed package.

The seed experiment (``research.experiment``), the benchmark against MarianMTModel and Joey
NMT (``research.benchmark``), the Bible corpus builder (``research.corpus_build``) and the
machine/git description every report carries (``research.provenance``). They import
``hf_attn`` like any user would; ``hf_attn`` never imports them. Run them from a clone
(``scripts/seed_experiment.py``, ``scripts/benchmark.py``, ``scripts/build_corpus.py``).
"""

from pathlib import Path

# The clone research/ runs from: git describes it, and worker processes import hf_attn from it.
REPO_ROOT = Path(__file__).resolve().parent.parent
