#!/usr/bin/env bash
# Installs what the benchmark needs on a Debian machine, as root, only where it is missing:
# the peers and floors from Debian (buildah, umoci, skopeo, docker-registry, hyperfine,
# openssl, curl, GNU time), doit-oci itself (through .ci/install, in .venv, unless the given
# Python already imports it) and matplotlib for the plot.
#
#     bash bench/install.sh [PYTHON]
#
# The last line printed is the Python to run bench/run.py with.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
for tool in buildah umoci skopeo docker-registry hyperfine openssl curl; do
    command -v "$tool" >/dev/null || packages+=("$tool")
done
[ -x /usr/bin/time ] || packages+=(time)
if [ ${#packages[@]} -gt 0 ]; then
    echo "installing with apt-get: ${packages[*]}" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o DPkg::Lock::Timeout=600 "${packages[@]}" >&2
fi

python="${1:-}"
imports='import doit, yaml, dockerfile_parse, httpx, isal.isal_zlib, zstandard'
if [ -z "$python" ] || ! "$python" -c "$imports" 2>/dev/null; then
    if [ -x .venv/bin/python ] && .venv/bin/python -c "$imports" 2>/dev/null; then
        python=.venv/bin/python
    else
        echo "installing doit-oci into .venv (.ci/install)" >&2
        .ci/install >&2
        python=.venv/bin/python
    fi
fi
# doit-oci's bytecode, so that no timed run compiles it (PYTHONDONTWRITEBYTECODE is set in
# some environments, and every run would compile the modules again)
"$python" -m compileall -q doit_oci/__init__.py rules registry >/dev/null
if ! "$python" -c 'import matplotlib' 2>/dev/null; then
    echo "installing matplotlib for $python" >&2
    "$python" -m pip install -q --disable-pip-version-check matplotlib >&2
fi
case "$python" in
    */*) echo "$(cd "$(dirname "$python")" && pwd)/$(basename "$python")" ;;
    *) command -v "$python" ;;
esac
