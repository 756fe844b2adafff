#!/usr/bin/env bash
# Serve one ONNX file with modelport the way the side-by-side peer benchmark starts every server:
#   bench/serve_for_peers.sh MODEL.onnx PORT
# The model is served under its file name without .onnx (small, medium), with dynamic batching
# (max_batch_size 64: whatever is queued when the instance frees up goes as one batch).
# MODELPORT_BENCH_WORKERS (default 2) sets --workers; MODELPORT_BENCH_ARGS adds serve options.
set -euo pipefail
model=$(realpath "$1")
port=$2
name=$(basename "$model" .onnx)
repo=$(mktemp -d /tmp/modelport-bench-repo.XXXXXX)
trap 'rm -rf "$repo"' EXIT TERM INT
mkdir -p "$repo/$name/1"
ln -s "$model" "$repo/$name/1/model.onnx"
printf 'max_batch_size: 64\ndynamic_batching { }\n' > "$repo/$name/config.pbtxt"
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck disable=SC2086
"$here/.venv/bin/python" -m modelport serve "$repo" --host 127.0.0.1 --http-port "$port" --no-grpc \
  --metrics-port 0 --workers "${MODELPORT_BENCH_WORKERS:-2}" ${MODELPORT_BENCH_ARGS:-}
