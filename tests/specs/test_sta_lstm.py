"""sta_lstm against tests/reference/sta_lstm.py: per-frame states for both attention LSTMs, other sizes."""

import pytest
import torch

import attndsl
from tests.oracle import check_against_reference
from tests.reference.sta_lstm import STALSTM


def shapes(j, d, hidden):
    return [
        {"x": [2, 6, j, d], "h": [2, 6, hidden], "h_temporal": [2, 6, hidden]},
        {"x": [1, 5, j, d], "h": [1, 5, hidden], "h_temporal": [1, 5, hidden]},  # batch 1, odd T
        {"x": [3, 1, j, d], "h": [3, 1, hidden], "h_temporal": [3, 1, hidden]},  # one frame
    ]


@pytest.mark.parametrize(
    "params",
    [
        {},  # NTU: 25 joints x 3, 100-unit LSTMs
        {"joints": 15, "joint_dim": 2, "hidden_size": 12, "attn_dim": 7},
        {"joints": 1, "joint_dim": 4, "hidden_size": 5, "attn_dim": 3},  # one joint: alpha = 1
    ],
)
def test_matches_reference(params):
    ref = STALSTM(**params)
    check_against_reference("sta_lstm", params, ref, shapes(ref.joints, ref.joint_dim, ref.hidden_size))


def test_shared_state_and_weights():
    m = attndsl.build("sta_lstm", joints=5, joint_dim=3, hidden_size=8, attn_dim=6).double()
    ref = STALSTM(5, 3, 8, 6).double()
    ref.load_state_dict(m.state_dict())
    x, h = torch.randn(2, 4, 5, 3, dtype=torch.float64), torch.randn(2, 4, 8, dtype=torch.float64)
    torch.testing.assert_close(m(x, h, h), ref(x, h))  # one LSTM state for both
    torch.testing.assert_close(m(x, h[:, :1].expand(-1, 4, -1), h), ref(x, h[:, 0], h))  # [B, hidden] state
