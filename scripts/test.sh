#!/usr/bin/env bash
# Install modelport with its test extras into ./.venv, start a throwaway PostgreSQL server,
# and run the whole test suite against it (and SQLite). This is the README's test command and
# exactly what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
echo "installing modelport[test] into .venv (a few minutes the first time)..." >&2
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
# The torch flavor's tests need torch; the CPU build pinned here installs from the local wheel
# cache on our machines instead of pulling a multi-GB CUDA build.
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==${MODELPORT_TEST_TORCH:-2.13.0}" \
  || echo "torch could not be installed: the torch flavor tests will be skipped" >&2

# Style and types first: they fail within a minute, the suite takes far longer (config in pyproject.toml).
echo "ruff check, ruff format --check, mypy..." >&2
.venv/bin/python -m ruff check src tests scripts bench
.venv/bin/python -m ruff format --check src tests scripts bench
.venv/bin/python -m mypy

echo "starting a throwaway PostgreSQL server..." >&2
pgdir=$(mktemp -d /tmp/modelport-pg.XXXXXX)
chmod 755 "$pgdir"
trap 'scripts/postgres.sh stop "$pgdir/pg"; rm -rf "$pgdir"' EXIT
MODELPORT_TEST_PG_URL=$(scripts/postgres.sh start "$pgdir/pg" "${MODELPORT_TEST_PG_PORT:-54329}")
export MODELPORT_TEST_PG_URL

# The drift report's screenshot test and the dashboard's tests (Playwright, which cannot download
# its own browser here) run Debian's headless Chromium; CI machines are root and get Debian's
# package, elsewhere those tests are skipped when no chromium is found.
if [ "$(id -u)" = 0 ] && ! command -v chromium >/dev/null; then
  (export DEBIAN_FRONTEND=noninteractive
   apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) \
    || echo "chromium could not be installed: the report screenshot and dashboard tests will be skipped" >&2
fi

# modelport package's tests build real images daemonless with buildah on a Debian root filesystem
# made by mmdebstrap (cached in ~/.cache/modelport-test); elsewhere those tests are skipped.
if [ "$(id -u)" = 0 ] && ! { command -v buildah && command -v mmdebstrap; } >/dev/null; then
  (export DEBIAN_FRONTEND=noninteractive
   pkgs="buildah mmdebstrap skopeo uidmap fuse-overlayfs"
   apt-get install -y -q $pkgs >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q $pkgs >/dev/null)) \
    || echo "buildah/mmdebstrap could not be installed: the image build tests will be skipped" >&2
fi

# modelport k8s render's tests build the rendered folders with `kubectl kustomize`; they fail (not
# skip) without kubectl. Root gets it from apt: kubectl where a Kubernetes repository is set up,
# else Debian's kubernetes-client.
if [ "$(id -u)" = 0 ] && ! command -v kubectl >/dev/null; then
  (export DEBIAN_FRONTEND=noninteractive
   apt-get install -y -q kubectl >/dev/null 2>&1 || apt-get install -y -q kubernetes-client >/dev/null 2>&1 \
     || (apt-get update -q >/dev/null && { apt-get install -y -q kubectl >/dev/null 2>&1 \
       || apt-get install -y -q kubernetes-client >/dev/null; })) \
    || echo "kubectl could not be installed: the k8s render tests will fail" >&2
fi

# Most tests wait on the processes they start, so several run at once (pytest-xdist, one test
# module per worker at a time, its fixtures built once); the few that assert on time or on what
# load achieves (marked `serial`) run after them, alone. Exit code 5 is "none selected" (a path
# argument holding no serial tests).
workers=${MODELPORT_TEST_WORKERS:-3}
pytest=(.venv/bin/python -m pytest -q -p no:cacheprovider --durations=40 --ignore tests/integration/test_batch_ray.py)
"${pytest[@]}" -n "$workers" --dist loadscope -m "not serial" "$@"
"${pytest[@]}" -m serial "$@" || [ $? = 5 ]

# The Ray engine's tests start a Ray cluster, which binds every interface it finds; they run in a
# network namespace whose only interface is loopback, so no cluster traffic leaves 127.0.0.1.
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null 2>&1; then
  netns="modelport-ray-$$"
  ip netns add "$netns"
  trap 'ip netns del "$netns" 2>/dev/null; scripts/postgres.sh stop "$pgdir/pg"; rm -rf "$pgdir"' EXIT
  ip netns exec "$netns" ip link set lo up
  ip netns exec "$netns" .venv/bin/python -m pytest -q -p no:cacheprovider tests/integration/test_batch_ray.py
else
  echo "not root or no iproute2: the Ray engine tests (loopback-only network namespace) are skipped" >&2
fi
