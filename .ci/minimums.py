"""Print pyproject.toml's declared minimums as exact pins, one requirement a line, for ``pip install -r``.

Every ``NAME>=X`` of ``[project] dependencies`` (and of the extras named with ``--extra``) becomes ``NAME==X``, so
the pins are generated from the declarations and cannot drift from them. ``--keep NAME`` leaves NAME's declared
range as it is (pip then takes the newest release it allows). A dependency without one ``>=`` minimum is an error:
every dependency must declare one, or nothing would hold it to it. Standard library only (Python ≥ 3.11), so a
fresh venv runs it before anything is installed.

Used by ``.ci/minimums.sh``, the CI step that installs the minimums and runs ``.ci/smoke.py``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
# NAME[extras] specifier,specifier (pyproject's dependencies use no environment markers or URLs)
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;@]*)$")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(extras: list[str] = ()) -> list[str]:
    """The requirement strings of the core dependencies and of ``extras``, as pyproject writes them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return lines


def pins(extras: list[str] = (), keep: list[str] = ()) -> list[str]:
    keep = {normalise(k) for k in keep}
    out = []
    for line in declared(list(extras)):
        match = REQUIREMENT.match(line)
        if not match:
            raise SystemExit(f"minimums.py: cannot read the requirement {line!r}")
        name, specifiers = match.group(1), [s.strip() for s in match.group(3).split(",") if s.strip()]
        minimums = [s[2:].strip() for s in specifiers if s.startswith(">=")]
        if len(minimums) != 1:
            raise SystemExit(f"minimums.py: {line!r} declares no single '>=' minimum")
        out.append(f"{name}{','.join(specifiers)}" if normalise(name) in keep else f"{name}=={minimums[0]}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="pyproject's declared minimums as exact pins")
    parser.add_argument("--extra", action="append", default=[], help="also pin this extra's dependencies")
    parser.add_argument("--keep", action="append", default=[], help="leave this dependency's declared range")
    args = parser.parse_args(argv)
    print("\n".join(pins(args.extra, args.keep)))


if __name__ == "__main__":
    main()
