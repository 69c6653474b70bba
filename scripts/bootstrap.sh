#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment and links it as .venv.
#
# The environment lives outside the checkout, keyed by a hash of requirements.txt, so that a
# fresh clone with the same pins reuses it instead of downloading several GB again.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3
key=$( (cat requirements.txt; "$python" --version) | sha256sum | cut -c1-16)
store=${TVMBRIDGE_ENV_STORE:-$HOME/.cache/tvmbridge/envs}
env_dir="$store/$key"
stamp="$env_dir/.tvmbridge-complete"

if [ ! -f "$stamp" ]; then
  echo "bootstrap: creating the virtual environment in $env_dir (first run: several minutes)"
  rm -rf "$env_dir"
  mkdir -p "$store"
  "$python" -m venv "$env_dir"
  # pip warns about every package the machine's local indexes lack; those lines are noise.
  quiet_pip() { "$env_dir/bin/python" -m pip install --quiet "$@" 2>&1 | grep -v "is ignored: it is neither" || true; }
  quiet_pip --upgrade pip wheel setuptools
  quiet_pip -r requirements.txt
  "$env_dir/bin/python" -c "import torch, torchvision, tvm" || { echo "bootstrap: the environment is broken" >&2; exit 1; }
  touch "$stamp"
fi

if [ "$(readlink .venv 2>/dev/null)" != "$env_dir" ]; then
  rm -rf .venv
  ln -s "$env_dir" .venv
fi

# Debian packages the C++ build and tests use. Installed when we are root; otherwise we say how.
missing=()
command -v ccache >/dev/null 2>&1 || missing+=(ccache)
command -v clang-format >/dev/null 2>&1 || missing+=(clang-format)
[ -f /usr/include/gtest/gtest.h ] || missing+=(libgtest-dev)
command -v ninja >/dev/null 2>&1 || missing+=(ninja-build)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "bootstrap: missing Debian packages; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
