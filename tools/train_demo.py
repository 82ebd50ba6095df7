"""Train the demo model shipped as ``load_model("demo")``.

    python tools/train_demo.py --out runs/demo --steps 4000 --seed 0
    python tools/train_demo.py automatic --init runs/demo/demo.pt --out runs/auto

The second form runs the segment-everything phase
(``napari_sam2.training.automatic``: the multimask outputs and the IoU head
only). Then copy ``runs/demo/demo.pt`` to ``src/napari_sam2/weights/demo.pt``.
Everything (data, prompts, order) follows from the seed.
"""

from __future__ import annotations

import argparse
import dataclasses

from napari_sam2.training import TrainConfig, train
from napari_sam2.training.automatic import AutoTrainConfig, train_automatic


def _flag(text: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no) for a boolean setting."""
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def main(argv: list[str] | None = None) -> None:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    automatic = bool(argv) and argv[0] == "automatic"
    if automatic:
        argv = argv[1:]
    config_type, run = (AutoTrainConfig, train_automatic) if automatic else (TrainConfig, train)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/auto" if automatic else "runs/demo")
    defaults = config_type()
    for f in dataclasses.fields(config_type):
        default = getattr(defaults, f.name)
        if isinstance(default, tuple):
            continue  # not a command-line setting
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=_flag if isinstance(default, bool) else type(default),
                            default=default)
    args = vars(parser.parse_args(argv))
    out = args.pop("out")
    path = run(config_type(**args), out)
    print(f"best checkpoint: {path}")


if __name__ == "__main__":
    main()
