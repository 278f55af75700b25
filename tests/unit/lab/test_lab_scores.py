"""The sharper mask scores, the model-free reference maps and the two-evidence scenes (issue 25, items 3 and 4).

- ``boundary_contrast`` on constructed maps whose answer is known: the mask itself,
  the mask moved 3 px, a uniform random map;
- the model-free maps find the lab's evidence without a model (why they are the bar to clear), and follow no
  target: on a two-evidence scene they give one map for both classes;
- ``score_attribution`` / ``trust_report`` score them as reference rows, and the table's columns are named by
  the dataclass module.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrnet_explorer import load_model
from hrnet_explorer.attribution import mass_in_mask, pointing_game, score_attribution, trust_report
from hrnet_explorer.attribution.groundtruth import boundary_contrast
from hrnet_explorer.attribution.trust import (
    MASK_COLUMNS,
    MODEL_FREE_MAPS,
    REFERENCE_MAPS,
    TABLE_COLUMNS,
    model_free_map,
)
from hrnet_explorer.errors import InputError
from hrnet_explorer.lab import render, render_scenes, sample


def _disk(size: int = 96, radius: float = 20, centre: tuple[float, float] = (48, 48)) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    return (y - centre[0]) ** 2 + (x - centre[1]) ** 2 <= radius**2


def test_boundary_contrast_of_known_maps():
    mask = _disk()
    assert boundary_contrast(mask.float(), mask) == pytest.approx(1.0)  # all in the core, nothing in the ring
    moved = boundary_contrast(torch.roll(mask.float(), 3, 1), mask)
    assert 0 < moved < 0.8  # a 3-px shift spills into the ring: measured 0.62
    assert mass_in_mask(torch.roll(mask.float(), 3, 1), mask) > 0.88  # while mass in mask stays high (0.905)
    random = torch.rand(mask.shape, generator=torch.Generator().manual_seed(0))
    assert abs(boundary_contrast(random, mask)) < 0.05
    assert boundary_contrast(torch.zeros(mask.shape), mask) == 0.0
    assert boundary_contrast(-mask.float(), mask, positive=True) == 0.0  # only the positive part counts
    with pytest.raises(InputError, match="width"):
        boundary_contrast(random, mask, width=0)
    with pytest.raises(InputError, match="no pixel 3 px inside"):
        boundary_contrast(random, _disk(radius=2))


def test_model_free_maps_find_the_evidence_without_a_model():
    """Colour distance from the median colour points into the evidence on every one of 20 test images: the
    evidence is the most salient blob by construction, which is why mask scores need this bar."""
    batch = render(range(20))
    for name in MODEL_FREE_MAPS:
        heats = [model_free_map(batch.images[i], name) for i in range(20)]
        assert all(h.shape == (224, 224) and bool(torch.isfinite(h).all()) and float(h.min()) >= 0 for h in heats)
        hits = np.mean([pointing_game(h, m) for h, m in zip(heats, batch.masks, strict=True)])
        mass = np.mean([mass_in_mask(h, m) for h, m in zip(heats, batch.masks, strict=True)])
        area = float(batch.masks.float().mean())
        assert mass > 1.5 * area, (name, mass, area)  # measured 0.22, 0.21 here; 0.20, 0.19 on 200 (H200)
        if name == "colour_distance":
            assert hits == 1.0, hits
    flat = model_free_map(torch.full((3, 32, 32), 0.5), "edges")
    assert float(flat.abs().max()) == 0.0  # no edge in a flat image (replicate padding: none at the border)
    with pytest.raises(InputError, match="Unknown model-free map"):
        model_free_map(batch.images[0], "gradcam")
    with pytest.raises(InputError, match=r"\(3, H, W\)"):
        model_free_map(batch.images[0, 0], "edges")


def test_a_map_of_the_image_alone_cannot_follow_the_target_in_a_two_evidence_scene():
    scenes = render_scenes(range(6))
    for i in range(6):
        heat = model_free_map(scenes.images[i], "colour_distance")
        masses = [mass_in_mask(heat, scenes.masks[i, j]) for j in range(2)]
        assert min(masses) > 0.02  # it sees both regions, and says the same whichever class is explained


@pytest.fixture(scope="module")
def lab():
    return load_model("lab", device="cpu")


def test_reference_rows_in_the_trust_table(lab):
    s = sample(5)  # a disk
    mask = torch.from_numpy(s.mask)
    row = score_attribution(lab, s.image, "colour_distance", s.label, mask=mask, steps=4)
    assert row.randomisation is None and row.display_name == "colour distance (no model)"
    assert row.pointing_game is True and row.mass_in_mask > 2 * row.mask_fraction
    assert -1 <= row.boundary_contrast <= 1
    keys = [k for k, _ in TABLE_COLUMNS + MASK_COLUMNS if k != "randomisation_similarity"]
    assert all(row.scores()[k] is not None for k in keys)
    with pytest.raises(InputError, match="takes no method options"):
        score_attribution(lab, s.image, "edges", s.label, method_options={"n_steps": 4})
    report = trust_report(lab, s.image, ["saliency"], s.label, mask=mask, steps=4, randomisation=False, model_free=True)
    assert [r.method for r in report.rows] == ["saliency", *REFERENCE_MAPS]
    assert [r.display_name for r in report.rows][1:] == [
        "random map (reference)",
        "colour distance (no model)",
        "Sobel edges (no model)",
    ]
    assert report.to_dict()["methods"]["edges"]["boundary_contrast"] is not None
