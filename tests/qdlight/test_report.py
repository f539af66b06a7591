"""The HTML report: parses, escapes, embeds decodable PNGs, provenance, atomic writes."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser

import matplotlib
import numpy as np
import pytest

from qdlight.report import Report, format_cell, package_versions

matplotlib.use("Agg")


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.open: list[str] = []
        self.images: list[str] = []
        self.h2: list[str] = []
        self.text: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag not in ("meta", "img", "br", "link"):
            self.open.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        self._in_h2 = tag == "h2"

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, (self.open, tag)
        self.open.pop()
        self._in_h2 = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_h2:
            self.h2.append(data)


def _parse(page: str) -> _Collect:
    p = _Collect()
    p.feed(page)
    p.close()
    assert p.open == [], p.open  # every element closed, properly nested
    return p


def _figure():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2))
    ax = fig.subplots()
    ax.plot(np.arange(5), np.arange(5) ** 2)
    return fig


def test_report_structure_and_images(tmp_path):
    r = Report("A <title> & more", subtitle="sub")
    s = r.section("Decays")
    s.text("tau = 60 ns <b>not bold</b>")
    s.figure(_figure(), caption="a decay")
    s.table(
        [
            {"power": "10 nW", "tau (s)": 6.0e-8, "ok": True},
            {"power": "4 uW", "tau (s)": float("nan"), "ok": False},
        ],
        ["power", "tau (s)", "ok"],
        status_column="ok",
    )
    r.section("g2").figure(_figure(), caption="g2")
    r.provenance(seed=7, configuration={"powers_w": [1e-8, 4e-6], "gate_s": 2.5e-9})
    path = r.write(tmp_path / "sub" / "report.html")
    page = path.read_text(encoding="utf-8")
    p = _parse(page)
    assert p.h2 == ["Decays", "g2", "Provenance"]
    assert "<b>" not in page and "&lt;b&gt;not bold&lt;/b&gt;" in page
    assert "&lt;title&gt; &amp; more" in page
    assert len(p.images) == 2
    from matplotlib.image import imread

    for src in p.images:
        head, data = src.split(",", 1)
        assert head == "data:image/png;base64"
        png = base64.b64decode(data, validate=True)
        img = imread(io.BytesIO(png), format="png")
        assert img.shape[0] > 50 and img.shape[1] > 50
    text = " ".join(p.text)
    assert "seed" in text and "7" in text and "gate_s" in text and "numpy" in text
    assert 'class="fail"' in page and 'class="ok"' in page
    assert "–" in text  # NaN shown as a dash
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temporary left


def test_write_is_atomic_on_error(tmp_path, monkeypatch):
    path = tmp_path / "r.html"
    path.write_text("old")
    r = Report("x")

    def boom():
        raise RuntimeError("render failed")

    monkeypatch.setattr(r, "html", boom)
    with pytest.raises(RuntimeError):
        r.write(path)
    assert path.read_text() == "old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["r.html"]


def test_image_must_be_png():
    with pytest.raises(ValueError, match="PNG"):
        Report("x").section("s").image(b"GIF89a...")


def test_helpers():
    v = package_versions(["numpy", "surely-not-a-package-qdlight"])
    assert v["numpy"] == np.__version__ and v["surely-not-a-package-qdlight"] == "not installed"
    assert format_cell(np.float64(0.5)) == "0.5" and format_cell(None) == "–"


def test_analyze_writes_a_report(tmp_path, capsys):
    from qdlight.cli import main

    ptu = tmp_path / "qd.ptu"
    assert main(["simulate", "--preset", "paper_qd", "--power", "1uW", "--duration", "1s",
                 "--seed", "1", "-o", str(ptu), "--no-progress"]) == 0  # fmt: skip
    html_path = tmp_path / "out" / "qd.html"
    argv = ["analyze", str(ptu), "--gate", "2.5ns", "--no-figures", "--no-progress"]
    assert main([*argv, "--report", str(html_path)]) == 0
    out = capsys.readouterr().out
    assert "report" in out and str(html_path) in out
    p = _parse(html_path.read_text(encoding="utf-8"))
    assert p.h2[:4] == [
        "Summary",
        "Intensity trace",
        "Decays and lifetimes",
        "Photon correlations g2",
    ]
    assert p.h2[-1] == "Provenance"
    assert len(p.images) == 5  # trace, two decays, g2, gated g2
    assert "gated g2(0)" in " ".join(p.text)


def test_analyze_report_name_checked(tmp_path, capsys):
    from qdlight.cli import main

    assert main(["analyze", str(tmp_path / "x.ptu"), "--report", "r.pdf"]) == 1
    assert "--report" in capsys.readouterr().err
