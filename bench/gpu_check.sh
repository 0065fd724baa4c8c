#!/usr/bin/env bash
# The GPU checks, on a machine with one CUDA GPU and PyTorch, transformers, PEFT and TRL already installed (no
# internet needed): the trainer's CUDA paths (bf16, activation checkpointing, QLoRA when bitsandbytes imports), the
# local generation backend on CUDA, and eval/merge/chat on CUDA, with the embedded model. One line per check; a few
# minutes on one GPU. `bash bench/gpu_check.sh --allow-cpu` tries the script on a CPU.
set -uo pipefail
cd "$(dirname "$0")/.."
# sprout from this checkout, installed or not: the package folders under their import names.
PKG=$(mktemp -d)
mkdir -p "$PKG/sprout"
for item in pipeline/*; do ln -s "$PWD/$item" "$PKG/sprout/"; done
ln -s "$PWD/trainer" "$PKG/sprout/trainer"
export PYTHONPATH="$PKG${PYTHONPATH:+:$PYTHONPATH}"
# $PYTHON if set, else this checkout's venv if there is one, else the machine's python3.
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
timeout 480 "$PYTHON" bench/gpu_check.py "$@"
status=$?
rm -rf "$PKG"
exit $status
