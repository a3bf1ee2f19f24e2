"""report.html in a real browser (headless Chromium): the DOM it builds holds summary.json's numbers,
the filter script works, and the screenshot shows the charts (their colours are on the screen).

Skipped with a message when Chromium is not installed; when CI is set a missing Chromium FAILS the
test instead (.ci/run installs it), so the browser check cannot silently stop running.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import anyio
import pytest

from batchrunner.htmlreport import STATUS_COLOURS
from batchrunner.job import load_job
from batchrunner.runner import prepare, run_prepared
from report_dom import demo_job, parse

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        message = "Chromium is not installed (apt-get install -y chromium): report.html was not checked in a browser"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _browser(chromium: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120, check=True)


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit, non-interlaced PNG, with the stdlib only."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and interlace == 0 and colour in (2, 6)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, bpp, rows


def _colours(png: bytes) -> dict[tuple[int, int, int], int]:
    width, bpp, rows = png_pixels(png)
    seen: dict[tuple[int, int, int], int] = {}
    for row in rows:
        for x in range(0, width * bpp, bpp):
            rgb = (row[x], row[x + 1], row[x + 2])
            seen[rgb] = seen.get(rgb, 0) + 1
    return seen


def test_report_in_headless_chromium(chromium: str, tmp_path: Path) -> None:
    job = demo_job(tmp_path)
    result = anyio.run(lambda: run_prepared(prepare(load_job(job)), output_dir=tmp_path / "runs", progress=False))
    page = result.run_dir / "report.html"
    summary = json.loads((result.run_dir / "summary.json").read_text(encoding="utf-8"))

    dom = parse(_browser(chromium, tmp_path, "--dump-dom", page.as_uri()).stdout)
    assert dom.status_counts == summary["counts"]
    assert dom.code_counts == summary["error_codes"]
    assert int(dom.by_id["total-rows"]) == summary["rows"] and dom.by_id["exit-code"] == str(summary["exit_code"])
    drawn = {b["data-label"]: float(b["data-value"]) for b in dom.bars}
    assert {s: n for s, n in summary["counts"].items() if n} == {s: drawn[s] for s in summary["counts"] if
                                                                 summary["counts"][s]}
    assert all(float(b["width"]) > 0 and float(b["height"]) > 0 for b in dom.bars if float(b["data-value"]))

    # the filter script ran in the browser: #code=INVALID_ID hides every other problem row
    filtered = parse(_browser(chromium, tmp_path, "--dump-dom", page.as_uri() + "#code=INVALID_ID").stdout)
    visible = [r for r in filtered.problem_rows if "none" not in r["style"]]
    assert visible and {r["code"] for r in visible} == {"INVALID_ID"}
    assert int(filtered.by_id["problems-shown"]) == len(visible) < int(filtered.by_id["problems-total"])

    shot = tmp_path / "shot.png"
    _browser(chromium, tmp_path, "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri())
    colours = _colours(shot.read_bytes())
    assert len(colours) > 20, "the screenshot is blank"
    for status in ("succeeded", "failed", "invalid"):  # each status bar is on the screen, in its colour
        hex_colour = STATUS_COLOURS[status].lstrip("#")
        rgb = tuple(int(hex_colour[i:i + 2], 16) for i in (0, 2, 4))
        assert colours.get(rgb, 0) > 50, f"the {status} bar was not drawn"
