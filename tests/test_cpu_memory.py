"""hf_attn.training.cpu_memory: after keep_freed_memory(), training stops page-faulting its logits; bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

# An output layer's step as in training: (1170 tokens x 8000 vocabulary) logits, loss, backward.
SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    import torch
    from hf_attn.training.cpu_memory import keep_freed_memory
    from hf_attn.models.seq2seq_utils import seq2seq_lm_loss

    applied = keep_freed_memory() if sys.argv[1] == "keep" else None
    torch.manual_seed(0)
    head = torch.nn.Linear(256, 8000, bias=False)
    hidden = torch.randn(1170, 256, requires_grad=True)
    labels = torch.randint(0, 8000, (1170,))
    faults, rss_mb = [], []
    for step in range(50):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        seq2seq_lm_loss(head(hidden), labels, 0.1).backward()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        rss_mb.append(int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20)
    print(json.dumps({"applied": applied, "faults": faults, "rss_mb": rss_mb}))
    """
)


def _run(mode: str) -> dict:
    completed = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt exists only on Linux")
def test_training_steps_reuse_freed_memory_and_memory_stays_bounded():
    logits_pages = 1170 * 8000 * 4 // 4096
    default, kept = _run("default"), _run("keep")
    # glibc's default unmaps every freed logits-sized block, so each step faults them in again.
    assert min(default["faults"][10:]) > logits_pages // 2, default["faults"]
    assert kept["applied"] is True
    # Kept: the last 40 steps fault in a small fraction of what they fault in by default ...
    assert sum(kept["faults"][10:]) < 0.1 * sum(default["faults"][10:]), kept["faults"]
    # ... and the process stops growing: a plateau, not a leak (one logits tensor is 37 MB).
    assert kept["rss_mb"][-1] - kept["rss_mb"][15] < 75, kept["rss_mb"]
