"""show_attend_tell against tests/reference/show_attend_tell.py: soft attention, hard attention with explicit noise.

The reference draws its randomness from a torch.Generator: first the per-call coin (torch.rand(())), then
the sample. The spec takes the same numbers as inputs coin[1] and u[B], drawn here from a generator seeded
like the reference's, and the reference's multinomial draw is replaced by the inverse-CDF draw of those
uniform numbers (the same distribution), so both sample identically.
"""

import pytest
import torch

import attndsl
from tests.oracle import check_against_reference
from tests.reference.show_attend_tell import SoftHardAttention

NOISE_SEED = 1230  # first draw 0.919: at semi_sampling_p = 0.5 the training call uses alpha
SAMPLING_SEED = 1234  # first draw 0.029: the training call uses the sample
D, N = 6, 5
SHAPES = [
    {"a": [2, 7, D], "h": [2, N], "coin": [1], "u": [2]},
    {"a": [1, 1, D], "h": [1, N], "coin": [1], "u": [1]},  # batch 1, one location
    {"a": [3, 10, D], "h": [3, N], "coin": [1], "u": [3]},
]


class FedNoise(SoftHardAttention):
    """The reference with forward(a, h, coin, u): its generator is seeded as the spec's noise was drawn."""

    @staticmethod
    def sample(alpha, generator=None):
        u = torch.rand(alpha.shape[0], generator=generator, dtype=alpha.dtype)
        idx = (alpha.detach().cumsum(1) <= u[:, None]).sum(1, keepdim=True).clamp_max(alpha.shape[1] - 1)
        return torch.zeros_like(alpha).scatter_(1, idx, 1.0)

    noise_seed = NOISE_SEED

    def forward(self, a, h, coin, u):
        return super().forward(a, h, generator=torch.Generator().manual_seed(self.noise_seed))


def noise_inputs(seed=NOISE_SEED):
    cache = {}

    def input_fn(name, shape, gen):
        if name == "coin":  # the reference's draw order: the coin, then the sample's uniforms
            g = torch.Generator().manual_seed(seed)
            cache["coin"] = torch.rand((), generator=g).double().reshape(1)
            cache["u"] = torch.rand(shape_u[0], generator=g, dtype=torch.float64)
            return cache["coin"]
        if name == "u":
            return cache["u"]
        if name == "a":
            shape_u[0] = shape[0]
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    shape_u = [0]
    return input_fn


@pytest.mark.parametrize(
    "params",
    [
        {},  # soft (deterministic)
        {"selector": True, "n_layers_att": 3, "temperature": 0.7},
        {"attention": "hard", "semi_sampling_p": 1.0},  # every training call samples
        {"attention": "hard", "semi_sampling_p": 0.0, "hard_eval": "argmax"},  # never samples; argmax in eval
        {"attention": "hard", "selector": True, "n_layers_att": 2},  # default p = 0.5, this call keeps alpha
    ],
)
def test_matches_reference(params):
    p = {"channels": D, "hidden_size": N, **params}
    check_against_reference("show_attend_tell", p, FedNoise(**p), SHAPES, input_fn=noise_inputs())


@pytest.mark.parametrize("selector", [False, True])
def test_semi_sampling_call_that_samples(selector):
    # p = 0.5 and a coin below it: the call uses the sample. Outputs and the gradient of `a` must agree; the
    # attention MLP gets no gradient (zero in the spec's one graph, None in the eager reference).
    p = {"channels": D, "hidden_size": N, "attention": "hard", "selector": selector}
    built = attndsl.build("show_attend_tell", **p).double().train()
    ref = FedNoise(**p).double().train()
    ref.noise_seed = SAMPLING_SEED
    ref.load_state_dict(built.state_dict())
    for shape_set in SHAPES:
        fn, gen = noise_inputs(SAMPLING_SEED), torch.Generator().manual_seed(5)
        xs = [fn(n, shape_set[n], gen) for n in ("a", "h", "coin", "u")]
        outs, grads = [], []
        for m in (built, ref):
            a = xs[0].clone().requires_grad_()
            z = m(a, *xs[1:])
            z.backward(torch.ones_like(z))
            outs.append(z), grads.append(a.grad)
        torch.testing.assert_close(outs[0], outs[1], atol=1e-12, rtol=0)
        torch.testing.assert_close(grads[0], grads[1], atol=1e-12, rtol=0)
        assert built.Wc_att.weight.grad.abs().max() == 0
        built.zero_grad(), ref.zero_grad()


def test_hard_sample_picks_one_annotation_with_probability_alpha():
    m = attndsl.build("show_attend_tell", channels=D, hidden_size=N, attention="hard", semi_sampling_p=1.0).train()
    g = torch.Generator().manual_seed(0)
    a, h = torch.randn(1, 4, D, generator=g), torch.randn(1, N, generator=g)
    m.eval()
    alpha = (m(a, h, torch.zeros(1), torch.zeros(1)).unsqueeze(1) @ torch.linalg.pinv(a)).squeeze()  # z = alpha a
    m.train()
    counts = torch.zeros(4)
    for u in torch.linspace(0, 1, 2001)[:-1]:
        z = m(a, h, torch.zeros(1), u.reshape(1))
        hit = (z[0] - a[0]).abs().amax(1) < 1e-6  # z is exactly one annotation
        assert hit.sum() == 1
        counts += hit
    torch.testing.assert_close(counts / 2000, alpha, atol=2e-3, rtol=0)


def test_defaults_are_the_official_codes():
    m = attndsl.build("show_attend_tell", channels=512)
    assert m.Wd_att.weight.shape == (512, 1000) and m.Wd_att.bias is None
    assert m.U_att.weight.shape == (1, 512) and not hasattr(m, "W_sel")
