"""Training and generation speed of hf_attn against MarianMTModel and Joey NMT, as ratios from one run.

``settings`` (what a run measures), ``data`` (the batches every system gets), ``systems``
(each framework's model config), ``joey`` (Joey NMT's venv and its own trainer), ``worker``
(one system in its own process), ``driver`` (starting workers, interleaved rounds),
``summary`` (medians, per-round ratios, efficiency), ``run`` (one run, end to end) and
``report`` (tables, plot, ``docs/benchmarks.md``). ``scripts/benchmark.py`` is the command line.
"""
