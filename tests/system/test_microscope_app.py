"""The app's Microscope tab: a page of units with its three figures and table; paging; bad requests one line."""

from __future__ import annotations

import gradio as gr
import pytest

from hrnet_explorer.ui.callbacks import Explorer
from hrnet_explorer.ui.microscope import PAGE, Microscope, map_choices

MAP = "stage2.module0.fused0"


@pytest.fixture(scope="module")
def scope(tmp_path_factory):
    return Microscope(Explorer("cpu"), steps=2, size=64, images=10, cache=tmp_path_factory.mktemp("fv"))


def test_a_page_of_units(scope):
    units, examples, tuning, text, first = scope.show("lab", "default", MAP, 4)
    assert first == 4 and len(units.data) == PAGE and len(tuning.data) == PAGE and len(examples.data) == 4 * PAGE
    assert "units 4–11 of 16" in text and text.count("\n| ") == PAGE + 1
    again = scope.show("lab", "default", MAP, 4)[3]
    assert f"{PAGE} of {PAGE} from the cache" in again


def test_the_next_page_wraps_around(scope):
    assert scope.next_page("lab", "default", MAP, 8)[4] == 0  # 16 channels: after 8-15 comes 0
    assert scope.next_page("lab", "default", MAP, 0)[4] == 8


@pytest.mark.parametrize(
    ("name", "first", "words"), [("nope", 0, "not a map"), (MAP, 16, "out of range"), (MAP, "x", "number")]
)
def test_bad_requests_are_one_line(scope, name, first, words):
    with pytest.raises(gr.Error, match=words) as info:
        scope.show("lab", "default", name, first)
    assert "\n" not in str(info.value)


def test_the_tab_is_in_the_app():
    from hrnet_explorer.ui.layout import build_demo

    demo = build_demo(Explorer("cpu"))
    names = {fn.api_name for fn in demo.fns.values()}
    assert {"microscope", "microscope_next"} <= names
    assert map_choices(demo.explorer, "hrnet_w18")[-4:] == [f"stage4.module2.fused{i}" for i in range(4)]
