"""Train the demo model shipped as ``load_model("demo")``.

    python tools/train_demo.py --out runs/demo --steps 4000 --seed 0

Then copy ``runs/demo/demo.pt`` to ``src/napari_sam2/weights/demo.pt``.
Everything (data, prompts, order) follows from the seed.
"""

from __future__ import annotations

import argparse
import dataclasses

from napari_sam2.training import TrainConfig, train


def _flag(text: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no) for a boolean setting."""
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/demo")
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        default = getattr(defaults, f.name)
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=_flag if isinstance(default, bool) else type(default),
                            default=default)
    args = vars(parser.parse_args())
    out = args.pop("out")
    cfg = TrainConfig(**args)
    path = train(cfg, out)
    print(f"best checkpoint: {path}")


if __name__ == "__main__":
    main()
