#!/usr/bin/env bash
# Provide Triton's perf_analyzer binary (it ships inside the tritonclient 2.51.0 wheel and needs
# libcudart from the CUDA runtime wheel, plus Debian's libb64; no GPU is needed).
#   scripts/perf_analyzer.sh DIR   → prints the path of a wrapper that runs it
set -euo pipefail
dir=${1:?usage: $0 DIR}
mkdir -p "$dir"
exec 9>"$dir/.lock" && flock 9  # test processes running side by side provision it once
if [ ! -x "$dir/perf_analyzer.bin" ]; then
  if ! ldconfig -p | grep -q libb64.so.0d; then
    (apt-get install -y -qq libb64-0d || (apt-get update -qq && apt-get install -y -qq libb64-0d)) >&2
  fi
  python=${PYTHON:-python3}
  tmp=$(mktemp -d)
  "$python" -m pip download -q --no-deps "tritonclient[all]==2.51.0" "nvidia-cuda-runtime-cu12==12.*" -d "$tmp" >&2
  "$python" - "$tmp" "$dir" <<'PY'
import glob, os, sys, zipfile
tmp, out = sys.argv[1:]
with zipfile.ZipFile(glob.glob(f"{tmp}/tritonclient-*.whl")[0]) as wheel:
    data = wheel.read("tritonclient-2.51.0.data/data/bin/perf_analyzer")
with zipfile.ZipFile(glob.glob(f"{tmp}/nvidia_cuda_runtime*.whl")[0]) as wheel:
    with open(f"{out}/libcudart.so.12", "wb") as handle:
        handle.write(wheel.read("nvidia/cuda_runtime/lib/libcudart.so.12"))
with open(f"{out}/perf_analyzer.bin.tmp", "wb") as handle:
    handle.write(data)
os.chmod(f"{out}/perf_analyzer.bin.tmp", 0o755)
os.replace(f"{out}/perf_analyzer.bin.tmp", f"{out}/perf_analyzer.bin")
PY
  rm -rf "$tmp"
fi
cat > "$dir/perf_analyzer.tmp" <<WRAP
#!/usr/bin/env bash
LD_LIBRARY_PATH="$dir\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$dir/perf_analyzer.bin" "\$@"
WRAP
chmod +x "$dir/perf_analyzer.tmp"
mv "$dir/perf_analyzer.tmp" "$dir/perf_analyzer"  # never half-written for a test running it
echo "$dir/perf_analyzer"
