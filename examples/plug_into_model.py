"""Plug attndsl blocks into a CNN: an SE block after each stage, CBAM at the end.

    python examples/plug_into_model.py

The same pattern works for torchvision or timm backbones: wrap a stage as
`nn.Sequential(stage, attndsl.build("senet", channels=stage_out_channels))`.
"""

import torch
from torch import nn

import attndsl


def stage(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class TinyNet(nn.Module):
    def __init__(self, classes=10, widths=(32, 64, 128)):
        super().__init__()
        layers, cin = [], 3
        for w in widths:
            layers += [stage(cin, w), attndsl.build("senet", channels=w)]  # SE after every stage
            cin = w
        layers.append(attndsl.build("cbam", channels=cin))
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, classes)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


def main():
    torch.manual_seed(0)
    net = TinyNet()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    for step in range(3):
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        print(f"step {step}: loss {loss.item():.4f}")
    n = sum(p.numel() for p in net.parameters())
    print(f"TinyNet with attndsl blocks: {n:,} parameters")
    return loss.item()


if __name__ == "__main__":
    main()
