"""rearrange patterns: shape inference and the runtime agree with plain torch; bad patterns are refused."""

import pytest
import torch

from attndsl.patterns import infer
from attndsl.runtime import rearrange
from attndsl.shapes import Pack, sym

X = torch.randn(2, 8, 3, 5)
B, H, W = sym("B"), sym("H"), sym("W")

CASES = [
    ("b c h w -> b (h w) c", {}, lambda x: x.flatten(2).transpose(1, 2), (B, H * W, 8)),
    ("b (g d) h w -> b g d h w", {"g": 2}, lambda x: x.view(2, 2, 4, 3, 5), (B, 2, 4, H, W)),
    ("b c h w -> b c w h", {}, lambda x: x.transpose(2, 3), (B, 8, W, H)),
    ("b c ... -> b (c ...)", {}, lambda x: x.reshape(2, -1), (B, 8 * H * W)),
    ("b c ... -> b ... c", {}, lambda x: x.permute(0, 2, 3, 1), (B, H, W, 8)),
    ("b c ... -> b (...) c", {}, lambda x: x.flatten(2).transpose(1, 2), (B, H * W, 8)),
    ("b c h w -> (b h) c w", {}, lambda x: x.permute(0, 2, 1, 3).reshape(6, 8, 5), (B * H, 8, W)),
    ("b c h w -> b 1 c h w", {}, lambda x: x.unsqueeze(1), (B, 1, 8, H, W)),
]


@pytest.mark.parametrize("pattern,sizes,torch_fn,shape", CASES, ids=[c[0] for c in CASES])
def test_runtime_and_inference_agree_with_torch(pattern, sizes, torch_fn, shape):
    assert torch.equal(rearrange(X, pattern, **sizes), torch_fn(X))
    assert infer(pattern, (B, 8, H, W), sizes)[0] == shape


def test_variadic_input():
    shape, _ = infer("b c ... -> b (...) c", (B, 8, Pack("S")), {})
    assert shape == (B, Pack("S").numel, 8)


@pytest.mark.parametrize(
    "pattern,message",
    [
        ("b c h w", "exactly one `->`"),
        ("b c h w -> b c (h", "unbalanced `(`"),
        ("b c h w -> b c h) w", "unbalanced `)`"),
        ("b c ((h w)) -> b c h w", "nested parentheses"),
        ("b c h w -> b c h d", "appears on one side only"),
        ("b c h h -> b c h", "appears twice on the left"),
        ("b c h w -> b 2 c h w", "only the unit axis `1`"),
        ("b (c d) h w -> b c d h w", "cannot infer sizes of c, d"),
        ("b c h -> b c h", "has 3 axes on the left, the input has 4"),
    ],
)
def test_bad_patterns(pattern, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        infer(pattern, (B, 8, H, W), {})
