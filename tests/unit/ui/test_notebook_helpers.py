"""hrnet_explorer.notebook: the tutorials' settings, their load step and explore (dropdowns over a figure)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hrnet_explorer import VARIANTS
from hrnet_explorer.notebook import ASSETS, CPU_VARIANTS, Settings, explore, load


def test_defaults_without_variables():
    s = Settings.from_env({})
    assert (s.variant, s.weights, s.device, s.input_size, s.fast, s.variants) == (
        "hrnet_w18_small",
        "default",
        "auto",
        224,
        False,
        "auto",
    )
    assert s.image == ASSETS / "grace_hopper.jpg" and s.image.is_file()
    assert s.sources == {}


def test_variables_override_the_notebooks_defaults_and_say_so():
    env = {
        "HRNET_EXPLORER_VARIANT": "w32",
        "HRNET_EXPLORER_INPUT_SIZE": "96",
        "HRNET_EXPLORER_FAST": "1",
        "HRNET_EXPLORER_WEIGHTS": "",  # empty: unset
        "HRNET_EXPLORER_IMAGE": "~/x.png",
    }
    s = Settings.from_env(env, variant="hrnet_w18", weights="random")
    assert (s.variant, s.input_size, s.fast, s.weights) == ("hrnet_w32", 96, True, "random")
    assert s.image == Path("~/x.png").expanduser()
    assert s.sources == {
        "variant": "HRNET_EXPLORER_VARIANT",
        "input_size": "HRNET_EXPLORER_INPUT_SIZE",
        "fast": "HRNET_EXPLORER_FAST",
        "image": "HRNET_EXPLORER_IMAGE",
    }
    lines = str(s).splitlines()
    assert lines[0].split() == ["variant", "hrnet_w32", "(from", "HRNET_EXPLORER_VARIANT)"]
    assert "weights     random" in str(s) and "(default)" in str(s)
    assert not any(line.startswith("variants") for line in lines)  # 05's setting, shown only when chosen
    assert "variants" in str(Settings.from_env({"HRNET_EXPLORER_VARIANTS": "all"}))


@pytest.mark.parametrize("value, fast", [("1", True), ("true", True), ("yes", True), ("0", False), ("no", False)])
def test_fast(value, fast):
    assert Settings.from_env({"HRNET_EXPLORER_FAST": value}).fast is fast


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"input_size": 100}, "multiple of 32"),
        ({"variant": "resnet50"}, "hrnet_w18_small"),  # get_variant's error lists the nine
        ({"colour": "red"}, "Unknown setting"),
    ],
)
def test_bad_settings_are_one_clear_error(kwargs, error):
    with pytest.raises((ValueError, TypeError, KeyError), match=error):
        Settings.from_env({}, **kwargs)


def test_compared_variants_by_device():
    s = Settings.from_env({})
    assert s.compared_variants("cpu") == list(CPU_VARIANTS)
    assert s.compared_variants("cuda") == list(VARIANTS)  # all nine on a GPU
    expected = list(VARIANTS) if torch.cuda.is_available() else list(CPU_VARIANTS)
    assert s.compared_variants() == expected  # device "auto"
    assert Settings.from_env({}, variants="all").compared_variants("cpu") == list(VARIANTS)
    chosen = Settings.from_env({"HRNET_EXPLORER_VARIANTS": " w64, hrnet_w18_small,w64 "})
    assert chosen.compared_variants("cuda") == ["hrnet_w64", "hrnet_w18_small"]
    with pytest.raises(ValueError, match="No variant"):
        Settings.from_env({}, variants=" , ").compared_variants()


def test_load_prints_where_the_weights_came_from(capsys, recwarn):
    loaded = load(Settings.from_env({}, weights="random", device="cpu"))
    assert not recwarn.list  # the printed line says it once, without a second, warning copy
    assert capsys.readouterr().out == loaded.weights.describe() + "\n"
    assert loaded.weights.is_random and loaded.variant.name == "hrnet_w18_small"


def test_explore_draws_the_first_choice_and_redraws_on_change(capsys):
    from IPython.core.interactiveshell import InteractiveShell

    created = not InteractiveShell.initialized()
    InteractiveShell.instance()  # display() then goes through a display publisher, with display ids
    calls = []

    def figure(a, b):
        calls.append((a, b))
        return f"figure {a} {b}"

    widgets = []
    import ipywidgets

    original = ipywidgets.HBox
    ipywidgets.HBox = lambda children: widgets.extend(children) or original(children)
    try:
        explore(figure, a={"one": 1, "two": 2}, b=["x", "y"])
    finally:
        ipywidgets.HBox = original
    assert calls == [(1, "x")]
    assert [w.description for w in widgets] == ["a", "b"]
    widgets[1].value = "y"
    assert calls == [(1, "x"), (1, "y")]
    assert "figure 1 y" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no options"):
        explore(figure, a=[], b=["x"])
    if created:
        InteractiveShell.clear_instance()
