#!/usr/bin/env bash
# Install napari-sam2 with its test dependencies into the active Python
# environment, plus Meta's sam2==1.1.0, which the equality tests (and only
# they) compare against.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q --upgrade pip
# the CPU build first: a bare "torch" requirement would pull a multi-GB CUDA build
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[test]"
bash tools/install_reference.sh
