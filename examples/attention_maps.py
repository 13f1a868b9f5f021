"""Attention maps over a photograph: `attndsl.capture` on a small model of two attndsl blocks.

    pip install -e '.[examples]'          # scikit-image (the photograph), matplotlib (the figure)
    python examples/attention_maps.py     # writes examples/attention_maps.png

No weights are downloaded, so the model is built to mean something without training: its
features are the photograph's CIE Lab colours (standardised), then
- SimAM, parameter free: its map sigmoid(1 / e_t) is high where a pixel stands out from the
  rest of its channel (the energy function of the paper);
- a non-local block whose query and key projections are the identity: its map (softmax of
  feature dot products, `maps: [a]`, which the default passes fuse into
  scaled_dot_product_attention) shows where one query pixel looks: the pixels of like colour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

import attndsl

HERE = Path(__file__).resolve().parent


def lab_features(rgb: np.ndarray, step: int = 4) -> torch.Tensor:
    """[1, 3, H/step, W/step] standardised Lab colours of an RGB uint8 image."""
    from skimage.color import rgb2lab

    lab = rgb2lab(rgb[::step, ::step])
    t = torch.tensor(lab, dtype=torch.float32).permute(2, 0, 1)[None]
    return (t - t.mean((2, 3), keepdim=True)) / t.std((2, 3), keepdim=True)


def model(sharpness: float = 1.5) -> nn.Module:
    simam = attndsl.build("simam", channels=3)
    non_local = attndsl.build("non_local", channels=3, inter_channels=3)
    with torch.no_grad():  # identity projections: the map compares the colours themselves
        for proj in (non_local.theta, non_local.phi):
            proj.weight.copy_(torch.eye(3) * sharpness)
            proj.bias.zero_()
    return nn.Sequential(simam, non_local).eval()


def attention_maps(features: torch.Tensor, query: tuple[int, int]) -> dict:
    """SimAM's map [H, W] (mean over channels) and the non-local map of one query pixel (row, col) [H/2, W/2]."""
    net = model()
    with torch.no_grad(), attndsl.capture(net) as maps:
        net(features)
    h, w = features.shape[2:]
    a = maps["1"]["a"][0]  # [H*W, H/2 * W/2]: keys on the 2x2 max-pooled grid
    return {"simam": maps["0"]["a"][0].mean(0), "non_local": a[query[0] * w + query[1]].reshape(h // 2, w // 2)}


def _np(t):
    return t.detach().cpu().numpy()


def main(out: Path = HERE / "attention_maps.png") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage import data

    photo = data.chelsea()  # Chelsea the cat, shipped with scikit-image
    feats = lab_features(photo)
    query = (30, 42)  # the cat's right eye (row, col of the features)
    maps = attention_maps(feats, query)
    extent = (0, photo.shape[1], photo.shape[0], 0)
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 2.6), dpi=64)
    axes[0].imshow(photo)
    axes[0].set_title("scikit-image: chelsea")
    axes[1].imshow(photo)
    axes[1].imshow(_np(maps["simam"]), cmap="magma", alpha=0.65, extent=extent)
    axes[1].set_title("simam: sigmoid(1 / e), channel mean")
    axes[2].imshow(photo)
    axes[2].imshow(_np(maps["non_local"]) ** 0.5, cmap="viridis", alpha=0.7, extent=extent)
    axes[2].plot(query[1] * 4, query[0] * 4, marker="*", color="red", markersize=14)
    axes[2].set_title("non_local: map of the query *")
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


if __name__ == "__main__":
    print(f"wrote {main()}")
