"""fusion_flows (the Sankey's data) and decompose (a fused map taken apart): exact, and errors that say why."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch

from hrnet_explorer import fusion, trace, zoo
from hrnet_explorer.analyses import Decomposition, decompose, fusion_flows
from hrnet_explorer.fusion import MEASURES, spatial_summary


@pytest.fixture(scope="module")
def traced(w18_small):
    torch.manual_seed(1)
    return trace(w18_small, torch.randn(2, 3, 224, 224))  # a batch of two: the `sample` argument matters


@pytest.fixture(scope="module")
def traced_v2():
    """w18_small_v2: several modules per stage (1/3/2), so module steps follow each other within a stage."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", zoo.RandomWeightsWarning)
        loaded = zoo.load_model("hrnet_w18_small_v2", "random", device="cpu", cache=False)
    torch.manual_seed(2)
    return trace(loaded, torch.randn(1, 3, 160, 160))


def _steps(flows):
    out: dict[int, list] = {}
    for f in flows:
        out.setdefault(f.step, []).append(f)
    return out


@pytest.mark.parametrize("measure", MEASURES)
def test_flows_follow_the_network(traced, measure):
    flows = fusion_flows(traced, measure)
    steps = _steps(flows)
    labels = [steps[s][0].label for s in sorted(steps)]
    # w18_small: one module per stage; transitions 2 and 3 each create a stream.
    assert labels == ["stage2.module0", "transition2", "stage3.module0", "transition3", "stage4.module0"]
    for group in steps.values():
        assert {f.label for f in group} == {group[0].label}
        label = group[0].label
        if label.startswith("transition"):
            n = int(label[-1])  # transition t takes t streams to t + 1
            assert sorted((f.source, f.target) for f in group) == [(k, k) for k in range(n)] + [(n - 1, n)]
            assert all(f.weight == 1.0 for f in group)
            continue
        stage, module = int(label[5]), int(label[-1])
        matrix = traced.fusion(stage, module).matrix(measure, 0)
        n = matrix.shape[0]
        assert len(group) == n * n
        for f in group:
            assert f.weight == pytest.approx(float(matrix[f.target, f.source]), abs=0)
        for i in range(n):  # every module's rows sum to 1, whatever the measure
            assert sum(f.weight for f in group if f.target == i) == pytest.approx(1.0, abs=1e-4)


def test_flows_positions_chain(traced_v2):
    flows = fusion_flows(traced_v2)
    steps = _steps(flows)
    assert sorted(steps) == list(range(len(steps)))
    labels = [steps[s][0].label for s in sorted(steps)]
    assert labels == [
        "stage2.module0", "transition2", "stage3.module0", "stage3.module1", "stage3.module2",
        "transition3", "stage4.module0", "stage4.module1",
    ]  # fmt: skip
    for s in sorted(steps)[1:]:  # every source at position s is a target of step s - 1
        targets = {f.target for f in steps[s - 1]}
        assert {f.source for f in steps[s]} <= targets


def test_flows_sample_and_measure(traced):
    first, second = fusion_flows(traced, sample=0), fusion_flows(traced, sample=1)
    assert [f.weight for f in first] != [f.weight for f in second]
    with pytest.raises(ValueError, match="energy_share"):
        fusion_flows(traced, "loudness")


@pytest.mark.parametrize("module", [0, -1])
def test_decompose_is_exact(traced, module):
    for target in range(4):
        dec = decompose(traced, 4, module, target)
        assert isinstance(dec, Decomposition)
        assert (dec.module, dec.stage, dec.index, dec.target) == ("stage4.module0", 4, 0, target)
        assert dec.sources == [0, 1, 2, 3]
        assert dec.max_error == 0.0  # fp32, summed left to right as the module does
        total = dec.contributions[0]
        for part in dec.contributions[1:]:
            total = total + part
        assert torch.equal(total, dec.presum)
        assert torch.equal(dec.presum.clamp_min(0), dec.fused)
        assert all(c.shape == dec.fused.shape for c in dec.contributions)
        assert torch.equal(dec.fused, traced[f"stage4.module0.fused{target}"])
        stats = traced.fusion(4, 0)
        assert traced.fusion(4, -1) is stats  # -1: the stage's last module (w18_small has one per stage)
        assert torch.equal(dec.energy_share, stats.energy_share[:, target])
        assert torch.equal(dec.agreement, stats.agreement[:, target])
        assert torch.equal(dec.relu_share, stats.relu_share[:, target])


def test_decompose_errors(traced, w18_small):
    with pytest.raises(KeyError, match="No module -2 in stage 4"):
        traced.fusion(4, -2)
    with pytest.raises(ValueError, match="streams 0..1"):
        decompose(traced, 2, 0, 2)
    with pytest.raises(ValueError, match="1 module"):
        decompose(traced, 3, 1, 0)
    with pytest.raises(ValueError, match="stages are 2, 3 and 4"):
        decompose(traced, 5, 0, 0)
    slim = trace(w18_small, torch.randn(1, 3, 64, 64), keep="outputs")
    with pytest.raises(KeyError, match="keep='all'"):
        decompose(slim, 4, 0, 0)


def test_pca_summary_matches_svd():
    torch.manual_seed(3)
    x = torch.randn(24, 14, 12)
    out = spatial_summary(x, "pca")
    assert out.shape == (14, 12, 3) and out.min() >= 0 and out.max() <= 1
    flat = x.reshape(24, -1).T
    flat = flat - flat.mean(0)
    _, _, v = torch.linalg.svd(flat, full_matrices=False)
    comps = flat @ v[:3].T
    comps = (comps - comps.min(0).values) / (comps.max(0).values - comps.min(0).values)
    got = out.reshape(-1, 3)
    for k in range(3):  # a principal axis is defined up to its sign
        err = min((got[:, k] - comps[:, k]).abs().max(), (got[:, k] - (1 - comps[:, k])).abs().max())
        assert err < 1e-4


def test_fusion_imports_no_trace_at_runtime():
    assert "Trace" not in vars(fusion)  # only under TYPE_CHECKING: trace.py imports fusion
    code = "import sys, hrnet_explorer.fusion, hrnet_explorer.figures; assert 'gradio' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
