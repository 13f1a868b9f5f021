"""Generate a standalone module from a spec, import it, and check it against attndsl.build.

    python examples/generate_standalone.py [spec] [channels]

The generated file needs only torch: copy it into any project.
"""

import importlib.util
import sys
import tempfile
from pathlib import Path

import torch

import attndsl


def main(name="ecanet", channels=64):
    src = attndsl.generate(name, channels=channels)
    path = Path(tempfile.mkdtemp()) / f"{name}_block.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cls_name = "".join(p.capitalize() for p in name.split("_"))
    generated = getattr(mod, cls_name)(channels=channels)
    built = attndsl.build(name, channels=channels)
    generated.load_state_dict(built.state_dict())  # same keys, same shapes
    x = torch.randn(2, channels, 9, 11)
    diff = (generated(x) - built(x)).abs().max().item()
    print(f"wrote {path} ({len(src.splitlines())} lines), class {cls_name}; max |generated - built| = {diff:.2e}")
    return diff


if __name__ == "__main__":
    main(*(sys.argv[1:2] or ["ecanet"]), *(int(a) for a in sys.argv[2:3]))
