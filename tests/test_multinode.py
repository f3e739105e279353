"""Several nodes, simulated on this machine: two torchrun "nodes" of one CPU process each, gloo on 127.0.0.1.

Each node is its own ``torchrun --nnodes 2 --node_rank N`` launch, as on a cluster (one per machine);
they meet at the rendezvous address, so everything between them goes through the process group.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_training import (
    REPO,
    assert_same_weights,
    final_weights,
    free_port,
    run_script,
    single_and_distributed_configs,
    tiny_config,
    tokenizer_dir,  # noqa: F401 (a fixture)
    write_config,
)

NODES = 2


def launch_nodes(config_file: Path, log_dir: Path) -> list[subprocess.Popen]:
    """One torchrun per simulated node, each running one training process; their logs go under ``log_dir``."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "ACCELERATE_USE_CPU": "1"}
    processes = []
    for node_rank in range(NODES):
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes",
            str(NODES),
            "--node_rank",
            str(node_rank),
            "--nproc_per_node",
            "1",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(port),
            "scripts/train.py",
            str(config_file),
        ]
        log = (log_dir / f"node{node_rank}.log").open("w")
        processes.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
    return processes


def wait_all(processes: list[subprocess.Popen], timeout: float = 600) -> list[int]:
    deadline = time.monotonic() + timeout
    try:
        return [process.wait(timeout=max(1.0, deadline - time.monotonic())) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()


def training_process_of(launcher: subprocess.Popen) -> int:
    """The pid of the training process a torchrun launcher started (its child running scripts/train.py)."""
    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split()
    for pid in children:
        if "scripts/train.py" in Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " "):
            return int(pid)
    raise AssertionError(f"torchrun {launcher.pid} has no training process among {children}")


def sigterm_second_node_after_a_checkpoint(
    launchers: list[subprocess.Popen], output_dir: Path, log_dir: Path
) -> list[str]:
    """Once the run has a checkpoint, SIGTERM the second node's training process only; both must then exit
    with an error (stopped). Returns the nodes' logs."""
    pointer = output_dir / "checkpoints" / "latest"
    deadline = time.monotonic() + 300
    while not pointer.is_file():
        assert time.monotonic() < deadline and all(p.poll() is None for p in launchers), "no checkpoint appeared"
        time.sleep(0.05)
    os.kill(training_process_of(launchers[1]), signal.SIGTERM)
    codes = wait_all(launchers, timeout=300)
    logs = [(log_dir / f"node{rank}.log").read_text() for rank in range(NODES)]
    assert all(code != 0 for code in codes), logs
    return logs


def checkpoint_step(output_dir: Path) -> int:
    return int((output_dir / "checkpoints" / "latest").read_text().strip().split("-")[1])


@pytest.mark.slow
def test_two_nodes_of_one_process_match_one_process(tokenizer_dir, tmp_path):  # noqa: F811
    """2 nodes × 1 process, each taking half of every global batch, end with the 1-process weights."""
    single, nodes = single_and_distributed_configs(tokenizer_dir, tmp_path, "nodes", max_steps=3)
    run_script([sys.executable, "scripts/train.py", str(single)])
    codes = wait_all(launch_nodes(nodes, tmp_path))
    assert codes == [0, 0], (tmp_path / "node0.log").read_text()[-3000:] + (tmp_path / "node1.log").read_text()[-3000:]

    summary = json.loads((tmp_path / "nodes" / "summary.json").read_text())
    assert summary["num_processes"] == NODES
    assert summary["target_tokens"] == json.loads((tmp_path / "one" / "summary.json").read_text())["target_tokens"]
    assert_same_weights(final_weights(tmp_path / "one"), final_weights(tmp_path / "nodes"), atol=1e-5)


@pytest.mark.slow
def test_sigterm_on_the_second_node_stops_both_after_one_checkpoint(tokenizer_dir, tmp_path):  # noqa: F811
    """SIGTERM that reaches only rank 1 stops rank 0 too, at the same step, with that step checkpointed."""
    max_steps = 400
    config = tiny_config(
        "rnn_seq2seq", tmp_path / "run", tokenizer_dir, max_steps=max_steps, save_every=2, eval_every=1000, log_every=1
    )
    launchers = launch_nodes(write_config(config, tmp_path / "run.json"), tmp_path)
    logs = sigterm_second_node_after_a_checkpoint(launchers, tmp_path / "run", tmp_path)
    assert "training stopped by SIGTERM" in logs[0], logs[0][-3000:]  # rank 0 was never signalled
    stopped_at = checkpoint_step(tmp_path / "run")
    assert stopped_at < max_steps
    assert f"at step {stopped_at}" in logs[0] and f"at step {stopped_at}" in logs[1]
    assert not (tmp_path / "run" / "summary.json").exists()
