"""Bad and odd input through the core API, the CLI and the app — and the app's security settings.

The corpus (tests/corpus.py) is made by the tests; nothing is downloaded. Every case is handled or
rejected with its specific message, on every surface; nothing crashes, and the app answers afterwards.
The counts (tried, handled, rejected, crashes) are printed at the end of the run.
"""

from __future__ import annotations

import ast
import base64
import io
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import corpus
import gradio
import pytest
import torch
from corpus import API_CASES, APP_MAX_FILE_SIZE, FILE_CASES, ROOT, Tally, app_server, encode, picture
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from hrnet_explorer.cli import main
from hrnet_explorer.images import ImageError, read_image
from hrnet_explorer.predict import predict
from hrnet_explorer.ui import DELETE_CACHE, example_images
from hrnet_explorer.ui.guard import INTERNAL_ERROR
from hrnet_explorer.zoo import ASSETS, WeightsError, load_model

VARIANT = "hrnet_w18_small"
APP_SIZE = "160"  # the app's smallest input size: the cheapest analysis
GENERIC_ERROR = "upstream Gradio app has raised an exception"  # what a client sees of an unhandled exception


@pytest.fixture
def one_thread():
    """One torch thread: on a shared 2-core machine, two OpenMP threads waiting on each other make a w18_small
    forward at 64×64 take 1.4 s instead of 16 ms."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    return corpus.write_files(tmp_path_factory.mktemp("corpus"))


def test_the_corpus_is_broad():
    names = [c.name for c in FILE_CASES + API_CASES]
    assert len(set(names)) == len(names)
    assert len(FILE_CASES) >= 25 and len(API_CASES) >= 25
    assert {c.outcome for c in FILE_CASES} == {"ok", "reject"} == {c.outcome for c in API_CASES}
    assert all(c.message for c in FILE_CASES + API_CASES if c.outcome == "reject")


# ------------------------------------------------------------------------------------------- core API


def _through_the_core(model, source) -> tuple[str, str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about some of what it is then refused
            pred = predict(model, source, topk=3, input_size=64)
    except (ImageError, ValueError) as exc:
        return "reject", str(exc)
    except Exception as exc:  # anything else is a crash: counted, and reported below
        return "crash", f"{type(exc).__name__}: {exc}"
    if pred.logits.shape != (1000,) or not torch.isfinite(pred.logits).all() or pred.input_size != (64, 64):
        return "crash", f"bad prediction: {pred.input_size}, finite {bool(torch.isfinite(pred.logits).all())}"
    return "ok", pred.top[0].label


def test_corpus_through_the_core_api(w18_small, files, one_thread):
    tally = Tally("core API")
    for case in FILE_CASES + API_CASES:
        source = files[case.name] if case in FILE_CASES else case.make()
        outcome, detail = _through_the_core(w18_small, source)
        tally.record(case, outcome, detail)
        if outcome == "ok" and case.check is not None and not case.check(read_image(case.make())):
            tally.wrong.append(f"{case.name}: read, but not as expected")
    problems = tally.report()
    assert not problems, problems
    assert not tally.crashes and tally.tried == len(FILE_CASES) + len(API_CASES)


# ------------------------------------------------------------------------------------------------ CLI


def _through_the_cli(path: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    argv = ["predict", path, "-v", VARIANT, "-w", "random", "--input-size", "64", "-k", "3", "--json"]
    try:
        with redirect_stdout(out), redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = main(argv)
    except SystemExit as exc:
        return "crash", f"exit {exc.code}: {err.getvalue()[-300:]}"
    except Exception as exc:
        return "crash", f"{type(exc).__name__}: {exc}"
    errors = [line for line in err.getvalue().splitlines() if line.startswith("hrnet-explorer: error:")]
    if code == 2 and len(errors) == 1:
        return "reject", errors[0]
    if code == 0 and not errors and len(json.loads(out.getvalue())["top"]) == 3:
        return "ok", "top-3 printed"
    return "crash", f"exit {code}, stderr {err.getvalue()[-300:]!r}"


def test_corpus_through_the_cli(files, one_thread):
    tally = Tally("CLI")
    for case in FILE_CASES:
        tally.record(case, *_through_the_cli(files[case.name]))
    problems = tally.report()
    assert not problems, problems


def test_cli_subprocess_prints_one_line_and_no_traceback(files):
    """As people run it: exit 2, one error line, no traceback (these two raised raw OSErrors before)."""
    names = ["JPEG cut in its markers", "truncated WEBP", "decompression bomb: PNG 40000×40000"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "hrnet_explorer.cli", "predict", files[name], "-w", "random", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in names
    ]
    for name, proc in zip(names, procs, strict=True):
        out, err = proc.communicate(timeout=300)
        case = next(c for c in FILE_CASES if c.name == name)
        errors = [line for line in err.splitlines() if line.startswith("hrnet-explorer: error:")]
        assert proc.returncode == 2 and not out, (name, err)
        assert len(errors) == 1 and case.message in errors[0], (name, err)
        assert "Traceback" not in err


# ------------------------------------------------------------------------------------------------ app


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``python app.py`` as users start it: its own defaults (host, queue, delete_cache), random weights
    offline, and a 2 MB upload limit (HRNET_EXPLORER_MAX_FILE_SIZE) so the over-limit file stays small."""
    with app_server(tmp_path_factory.mktemp("app"), OMP_NUM_THREADS="1") as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server) -> Client:
    return Client(server.url, verbose=False, download_files=False)


def analyze(client: Client, image, weights: str = "random", size: str = APP_SIZE):
    return client.predict(image, VARIANT, weights, size, "energy_share", api_name="/analyze")


def _through_the_app(client: Client, path: str) -> tuple[str, str]:
    try:
        banner, summary, *_ = analyze(client, handle_file(path))
    except AppError as exc:  # a gr.Error: the message reached the client
        internal = GENERIC_ERROR in str(exc) or INTERNAL_ERROR in str(exc)  # a bug, not the user's mistake
        return ("crash" if internal else "reject"), str(exc)
    except ValueError as exc:  # gradio_client refuses uploads over the server's max_file_size itself
        return "reject", str(exc)
    except Exception as exc:
        return "crash", f"{type(exc).__name__}: {exc}"
    if VARIANT not in summary or "Top-1" not in summary or "Random weights" not in banner["value"]:
        return "crash", f"unexpected answer {summary[:200]!r}"
    return "ok", "analyzed"


def test_corpus_through_the_app(server, client, files):
    tally = Tally("app")
    for case in FILE_CASES:
        tally.record(case, *_through_the_app(client, files[case.name]), expected=case.app)
    problems = tally.report()
    assert not problems, f"{problems}\n--- server log ---\n{server.log()}"
    # ...and the app still answers.
    assert server.proc.poll() is None
    assert _through_the_app(client, str(ASSETS / "grace_hopper.jpg")) == ("ok", "analyzed")


def _raw_call(server, api: str, data: list) -> tuple[str, str]:
    """One call through Gradio's REST API, bypassing gradio_client: ("complete" | "error" | HTTP code, body)."""
    request = urllib.request.Request(
        f"{server.url}gradio_api/call/{api}",
        data=json.dumps({"data": data}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            event = json.load(response)["event_id"]
        with urllib.request.urlopen(f"{server.url}gradio_api/call/{api}/{event}", timeout=120) as response:
            body = response.read().decode()
    except urllib.error.HTTPError as exc:
        return str(exc.code), exc.read().decode(errors="replace")
    kind = "complete" if "event: complete" in body else "error" if "event: error" in body else "other"
    return kind, body


def _image_data(**fields) -> dict:
    return {**fields, "meta": {"_type": "gradio.FileData"}}


def test_app_binds_to_loopback_by_default(server):
    listening = [c.laddr for c in server.process.net_connections("inet") if c.status == "LISTEN"]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening


def test_upload_limit_is_enforced_by_the_server(server):
    config = json.load(urllib.request.urlopen(server.url + "config", timeout=30))
    assert APP_MAX_FILE_SIZE == "2mb" and config["max_file_size"] == 2 * 2**20  # app.py passes MAX_FILE_SIZE on
    big = corpus.noise_png(2.6)
    assert len(big) > 2 * 2**20
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + big
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{server.url}gradio_api/upload",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=60)
    assert info.value.code == 413 and "maximum" in info.value.read().decode().lower()
    # A data: URL travels inside the request, not as an upload: the app holds it to the same limit.
    url = "data:image/png;base64," + base64.b64encode(big).decode()
    kind, body = _raw_call(server, "analyze", [_image_data(url=url), VARIANT, "random", APP_SIZE, "energy_share", 0])
    assert kind == "error" and "maximum file size" in body, body[:500]
    small = "data:image/png;base64," + base64.b64encode(encode(picture(), "PNG")).decode()
    kind, body = _raw_call(server, "analyze", [_image_data(url=small), VARIANT, "random", APP_SIZE, "energy_share", 0])
    assert kind == "complete", body[:500]


def test_no_user_controlled_server_paths(server, client):
    config = json.load(urllib.request.urlopen(server.url + "config", timeout=30))
    kinds = {c["type"] for c in config["components"]}
    assert not kinds & {"textbox", "file", "uploadbutton", "fileexplorer", "video", "audio", "model3d"}, kinds
    images = [c for c in config["components"] if c["type"] == "image"]
    assert len(images) == 1 and images[0]["props"]["sources"] == ["upload", "webcam", "clipboard"]
    # An image "upload" that names a file on the server is refused by Gradio before our code runs.
    kind, body = _raw_call(server, "analyze", [_image_data(path="/etc/hostname"), VARIANT, "random", APP_SIZE, "l2", 0])
    assert kind == "error" and "complete" not in body
    # Weights are names, never checkpoint paths (the Weights box takes custom values).
    for weights in ("/etc/hostname", "../../model.safetensors", "weights.pth", str(ROOT / "pyproject.toml")):
        with pytest.raises(AppError, match=r"Unknown weights .* Choose one of: default, gluon_in1k, ms_in1k, random"):
            analyze(client, handle_file(str(ASSETS / "grace_hopper.jpg")), weights=weights)


def test_user_text_in_error_messages_is_escaped(client):
    image = handle_file(str(ASSETS / "grace_hopper.jpg"))
    script = "<script>alert(1)</script>"
    with pytest.raises(AppError) as info:
        analyze(client, image, weights=script)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in str(info.value) and "<script>" not in str(info.value)
    with pytest.raises(AppError) as info:
        client.predict(image, VARIANT, "random", APP_SIZE, '<img src=x onerror="alert(1)">', "0", api_name="/decompose")
    assert '&lt;img src=x onerror="alert(1)"&gt;' in str(info.value) and "<img" not in str(info.value)


def test_gradio_has_its_advisories_fixed():
    major, minor = (int(p) for p in gradio.__version__.split(".")[:2])
    assert (major, minor) >= (6, 20), gradio.__version__


class _Exploit:
    """Unpickled, it runs code: writes ``marker``."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('pwned')",)


@pytest.mark.parametrize("suffix", [".pth", ".bin", ".safetensors"])
def test_weights_never_run_code(tmp_path, suffix):
    marker = tmp_path / "pwned"
    checkpoint = tmp_path / f"evil{suffix}"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "payload": _Exploit(marker)}, checkpoint)
    with pytest.raises(WeightsError, match="Could not read checkpoint"):
        load_model(VARIANT, str(checkpoint), device="cpu", cache=False)
    assert not marker.exists()
    if suffix == ".pth":  # the file is a real exploit: an unsafe load would have run it
        torch.load(checkpoint, weights_only=False)
        assert marker.read_text() == "pwned"


def test_the_package_never_unpickles():
    """Every torch.load in the package passes weights_only=True; nothing calls pickle.load(s)."""
    calls = []
    for path in (ROOT / "hrnet_explorer").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = getattr(node.func.value, "id", None)
                if (owner, node.func.attr) == ("torch", "load"):
                    safe = any(
                        k.arg == "weights_only" and getattr(k.value, "value", None) is True for k in node.keywords
                    )
                    calls.append((path.name, node.lineno, safe))
                assert (owner, node.func.attr) not in {("pickle", "load"), ("pickle", "loads")}, path
    assert calls and all(safe for *_, safe in calls), calls


def test_uploads_are_deleted_when_the_app_stops(server, client):
    """Last in this module: it stops the server. Gradio deletes uploads older than DELETE_CACHE's age every
    DELETE_CACHE's frequency, and all of them at shutdown; only the example images stay."""
    frequency, age = DELETE_CACHE
    assert 0 < frequency <= 3600 and 0 < age <= 24 * 3600
    assert _through_the_app(client, str(ASSETS / "grace_hopper.jpg")) == ("ok", "analyzed")
    uploads = lambda: sorted(p for p in server.temp_dir.rglob("*") if p.is_file())  # noqa: E731
    examples = {Path(p).name for p in example_images()}
    assert len([p for p in uploads() if p.name not in examples]) >= len(FILE_CASES) // 2  # the corpus went there
    assert server.stop() is not None
    assert [p for p in uploads() if p.name not in examples] == [], server.log()
