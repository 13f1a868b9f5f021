"""The examples run as documented."""

import math
import runpy
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_plug_into_model_trains():
    ns = runpy.run_path(str(EXAMPLES / "plug_into_model.py"))
    assert math.isfinite(ns["main"]())


def test_generate_standalone_matches_build():
    ns = runpy.run_path(str(EXAMPLES / "generate_standalone.py"))
    assert ns["main"]("ecanet", 32) == 0.0
    assert ns["main"]("cbam", 32) == 0.0
