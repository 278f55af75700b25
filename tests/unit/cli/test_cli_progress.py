"""Long CLI work shows a tqdm bar on stderr on a terminal; nothing with --quiet or when stderr is not a terminal."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import threading

import pytest
from PIL import Image

from hrnet_explorer.cli import main
from hrnet_explorer.report import image_report

# IG with 16 steps at 224 px runs 8 at a time on a CPU: the ends' forward and two chunks, three batches
IG = ["-w", "random", "--device", "cpu", "--input-size", "224", "-m", "ig", "--steps", "16", "--target", "1"]


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "cat.png"
    Image.effect_mandelbrot((160, 120), (-2, -1.2, 1, 1.2), 64).convert("RGB").save(path)
    return path


def _bar_lines(err: str) -> list[str]:
    return [line for line in err.replace("\r", "\n").splitlines() if "batch" in line]


@pytest.mark.parametrize("quiet", [False, True])
def test_explain_bar_on_a_terminal_unless_quiet(image_file, capsys, monkeypatch, quiet):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["explain", str(image_file), *IG, "--json", *(["--quiet"] if quiet else [])]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["result"]["settings"]["internal_batch_size"] == 8  # stdout stays pure JSON
    bars = _bar_lines(err)
    if quiet:
        assert bars == [] and "\r" not in err, err
    else:
        assert any(line.lstrip().startswith("ig:") and "3/3" in line for line in bars), err


def test_explain_no_bar_when_stderr_is_not_a_terminal(image_file, capsys):
    assert not sys.stderr.isatty()
    assert main(["explain", str(image_file), *IG, "--json"]) == 0
    out, err = capsys.readouterr()
    json.loads(out)
    assert err.splitlines() == [err.splitlines()[0]] and err.startswith("WARNING: RANDOM weights"), err  # no bar


def test_explain_bar_on_a_real_terminal(image_file):
    """The command as a user runs it: stderr on a pseudo-terminal, stdout piped."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a fresh one is 0 columns wide
    chunks = []

    def drain():
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:  # the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    cmd = [sys.executable, "-m", "hrnet_explorer.cli", "explain", str(image_file), *IG]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=follower, text=True, timeout=300)
    os.close(follower)
    reader.join(timeout=10)
    os.close(leader)
    err = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0 and "convergence delta" in proc.stdout
    assert any("ig:" in line and "3/3" in line for line in _bar_lines(err)), err


def test_variants_measure_bar(capsys, monkeypatch):
    from hrnet_explorer.cli import describe

    calls, stored = [], describe.variant_costs

    def counted(name, measure=False):  # the stored counts (no 20 s recount), one call seen per variant
        calls.append(measure)
        return stored(name)

    monkeypatch.setattr(describe, "variant_costs", counted)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["variants", "--measure", "--json"]) == 0
    out, err = capsys.readouterr()
    assert calls == [True] * 9 and len(json.loads(out)["variants"]) == 9
    assert "counting params and MACs" in err and "variant" in err
    assert main(["variants", "--json"]) == 0  # the stored counts: instant, no bar
    assert capsys.readouterr().err == ""
    assert main(["variants", "--measure", "--json", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_image_report_progress(w18_small, tmp_path, capsys):
    calls = []
    image_report(
        Image.new("RGB", (64, 64), "white"),
        out=tmp_path / "r.html",
        loaded=w18_small,
        input_size=64,
        ig_steps=4,
        progress=lambda done, total: calls.append((done, total)),
    )
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[0] == 0 and len(set(calls)) == len(calls)  # each step once, in order
    # five one-step phases (trace, figures, Grad-CAM, knockouts, writing), then the attributions' batches at
    # 64 px: saliency 2 (the top-1 forward, the gradient), IG 2 (the ends, one chunk), stream shares 2 (the
    # body, one chunk); each attribution's total joins when it starts
    assert calls[-1] == (11, 11) and calls[0] == (0, 8)
