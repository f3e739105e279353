#!/usr/bin/env bash
# GPU readiness check of hf_attn (research/benchmark/gpu_check.py): bf16 training throughput and MFU of the
# base-size Transformer, beam-4 generate, compiled static-cache generate, sdpa against flash where installed.
# Writes JSON (--output, default gpu_check.json); stops after 8 minutes. Refuses without CUDA; --dry-run runs
# every part on the CPU at tiny sizes. Any argument goes to the Python module: scripts/gpu_check.sh --help
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="${repo}${PYTHONPATH:+:${PYTHONPATH}}"
exec timeout --signal=INT --kill-after=20 480 python -m research.benchmark.gpu_check "$@"
