#!/usr/bin/env bash
# Meta's SAM 2 package, for the equality tests only. It pins torchvision and
# builds a CUDA extension by default; neither is needed by the modules we
# compare against (modeling and the video predictor), so: no deps, no build
# isolation, no CUDA extension, plus the two packages it imports.
set -euo pipefail
python -m pip install -q setuptools wheel "hydra-core>=1.3.2" "iopath>=0.1.10" "tqdm" "pillow"
SAM2_BUILD_CUDA=0 python -m pip install -q --no-deps --no-build-isolation "sam2==1.1.0"
python -c "import sam2.sam2_video_predictor; print('reference sam2', __import__('importlib.metadata').metadata.version('sam2'), 'ready')"
