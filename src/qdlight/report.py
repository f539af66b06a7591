"""A self-contained HTML report: sections of text, tables and figures, plus provenance.

:class:`Report` collects content in order and :meth:`Report.write` renders
one HTML file with every figure embedded as a base64 PNG (no external files,
scripts or fonts), so the report can be mailed or archived as it is.  The
HTML is written by hand (no template engine) and every piece of user text is
escaped with :func:`html.escape`.  The provenance section lists the package
versions (:mod:`importlib.metadata`), the command line, the date, and
whatever seeds and configuration the caller adds with
:meth:`Report.provenance`.  Files are written atomically
(:func:`qdio._util.atomic_write`).

>>> r = Report("demo")
>>> s = r.section("Rates")
>>> _ = s.text("Detected photons per second.")
>>> _ = s.table([{"channel": 0, "rate (/s)": 1234.5}])
>>> page = r.html()
>>> "<h2 id=\\"rates\\">Rates</h2>" in page and ">1234<" in page
True
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
import platform
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "Report", "Section", "analysis_report", "format_cell", "package_versions"]

PACKAGES = (
    "qdlight",
    "numpy",
    "scipy",
    "numba",
    "matplotlib",
    "h5py",
    "tqdm",
    "jax",
    "numpyro",
    "arviz",
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #bbb;margin-top:2em}
table{border-collapse:collapse;margin:0.8em 0;font-size:0.92em}
th,td{border:1px solid #ccc;padding:0.25em 0.6em;text-align:right}
th{background:#f2f2f2}td.t,th.t{text-align:left}
tr.fail td{background:#fde2e2}tr.ok td.check{color:#176317}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:0.9em;color:#555}nav ul{columns:2}
pre{background:#f7f7f7;padding:0.6em;overflow-x:auto;font-size:0.85em}
.note{color:#555;font-size:0.92em}
"""


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` ("not installed" for the missing ones).

    >>> package_versions(["numpy"])["numpy"] != "not installed"
    True
    """
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def format_cell(value: Any, digits: int = 4) -> str:
    """A table cell as text: floats to ``digits`` significant digits, NaN and None as "–".

    >>> format_cell(0.123456), format_cell(float("nan")), format_cell(12), format_cell(True)
    ('0.1235', '–', '12', 'yes')
    """
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return f"{value:.{digits}g}"
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return format_cell(value.item(), digits)
    return str(value)


def _slug(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    slug, k = base, 2
    while slug in taken:
        slug, k = f"{base}-{k}", k + 1
    taken.add(slug)
    return slug


@dataclass
class Section:
    """One section of a :class:`Report`; add content in the order it should appear."""

    title: str
    parts: list[str] = field(default_factory=list)

    def text(self, text: str, *, note: bool = False) -> Section:
        """A paragraph of plain text (escaped)."""
        cls = ' class="note"' if note else ""
        self.parts.append(f"<p{cls}>{html.escape(text)}</p>")
        return self

    def preformatted(self, text: str) -> Section:
        """Monospaced text (a command, a printed summary), escaped."""
        self.parts.append(f"<pre>{html.escape(text)}</pre>")
        return self

    def table(
        self,
        rows: Sequence[Mapping[str, Any]],
        columns: Sequence[str] | None = None,
        *,
        caption: str | None = None,
        digits: int = 4,
        status_column: str | None = None,
    ) -> Section:
        """A table of ``rows`` (dicts); ``columns`` picks and orders the keys.

        Numbers are right-aligned, text left-aligned.  With ``status_column``
        a row whose value there is False is highlighted (a failed check).
        """
        if columns is None:
            columns = list(dict.fromkeys(k for r in rows for k in r))
        out = ["<table>"]
        if caption:
            out.append(f"<caption>{html.escape(caption)}</caption>")
        out.append(
            "<tr>"
            + "".join(
                f'<th class="{"t" if _is_text_column(rows, c) else ""}">{html.escape(c)}</th>'
                for c in columns
            )
            + "</tr>"
        )
        for r in rows:
            cls = ""
            if status_column is not None and status_column in r:
                cls = ' class="ok"' if r[status_column] else ' class="fail"'
            cells = []
            for c in columns:
                v = r.get(c)
                kind = "t" if isinstance(v, str) else ""
                if c == status_column:
                    kind += " check"
                cells.append(
                    f'<td class="{kind.strip()}">{html.escape(format_cell(v, digits))}</td>'
                )
            out.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
        out.append("</table>")
        self.parts.append("\n".join(out))
        return self

    def figure(self, fig: Any, caption: str = "", *, dpi: int = 100) -> Section:
        """A matplotlib figure, embedded as a base64 PNG (the figure is not closed)."""
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        return self.image(buf.getvalue(), caption)

    def image(self, png: bytes, caption: str = "") -> Section:
        """PNG bytes, embedded."""
        if png[:8] != b"\x89PNG\r\n\x1a\n":
            raise ValueError("image: expected PNG bytes")
        data = base64.b64encode(png).decode("ascii")
        alt = html.escape(caption or "figure", quote=True)
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self.parts.append(
            f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">{cap}</figure>'
        )
        return self


def _is_text_column(rows: Sequence[Mapping[str, Any]], column: str) -> bool:
    return any(isinstance(r.get(column), str) for r in rows)


class Report:
    """An HTML report assembled section by section.

    Parameters
    ----------
    title : str
    subtitle : str, optional
        A line under the title.
    """

    def __init__(self, title: str, subtitle: str = "") -> None:
        self.title = title
        self.subtitle = subtitle
        self.sections: list[Section] = []
        self._provenance: dict[str, Any] = {}
        self.created = _dt.datetime.now(_dt.UTC)

    def section(self, title: str) -> Section:
        """Append and return a new section."""
        s = Section(title)
        self.sections.append(s)
        return s

    def provenance(self, **items: Any) -> Report:
        """Record provenance items (seeds, configuration, notes); shown at the end."""
        self._provenance.update(items)
        return self

    def _provenance_section(self) -> Section:
        s = Section("Provenance")
        rows = [
            {"item": "created", "value": self.created.isoformat(timespec="seconds")},
            {"item": "command line", "value": " ".join(sys.argv)},
            {"item": "platform", "value": platform.platform()},
        ]
        for key, value in self._provenance.items():
            if isinstance(value, Mapping | list | tuple):
                continue
            rows.append({"item": key, "value": format_cell(value, 8)})
        s.table(rows, ["item", "value"])
        for key, value in self._provenance.items():
            if isinstance(value, Mapping):
                s.table(
                    [{"key": str(k), "value": _plain(v)} for k, v in value.items()],
                    ["key", "value"],
                    caption=key,
                    digits=8,
                )
            elif isinstance(value, list | tuple):
                s.table([{key: _plain(v)} for v in value], [key], digits=8)
        versions = package_versions()
        s.table(
            [{"package": k, "version": v} for k, v in versions.items()],
            ["package", "version"],
            caption="package versions",
        )
        return s

    def html(self) -> str:
        """The whole report as one HTML string."""
        sections = [*self.sections, self._provenance_section()]
        taken: set[str] = set()
        slugs = [_slug(s.title, taken) for s in sections]
        out = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(self.title)}</title>",
            f"<style>{_CSS}</style></head><body>",
            f"<h1>{html.escape(self.title)}</h1>",
        ]
        if self.subtitle:
            out.append(f'<p class="note">{html.escape(self.subtitle)}</p>')
        out.append("<nav><ul>")
        out += [
            f'<li><a href="#{slug}">{html.escape(s.title)}</a></li>'
            for s, slug in zip(sections, slugs, strict=True)
        ]
        out.append("</ul></nav>")
        for s, slug in zip(sections, slugs, strict=True):
            out.append(f'<section><h2 id="{slug}">{html.escape(s.title)}</h2>')
            out.extend(s.parts)
            out.append("</section>")
        out.append("</body></html>")
        return "\n".join(out) + "\n"

    def write(self, path: str | Path) -> Path:
        """Write the report to ``path`` atomically; returns the path."""
        from qdio._util import atomic_write

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as f:
            f.write(self.html().encode("utf-8"))
        return path


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_plain(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(str(_plain(v)) for v in value)
    if isinstance(value, float):
        return format_cell(value, 8)
    return value


def analysis_report(
    summary: Mapping[str, Any], objects: Mapping[str, Any], *, options: Mapping[str, Any]
) -> Report:
    """The report of one analysed file (``qdlight analyze --report``).

    Parameters
    ----------
    summary, objects
        What :func:`qdlight.analyze.analyze` returns.
    options
        The analysis options, recorded in the provenance.
    """
    from qdinfer import plots

    from .analyze import format_summary

    res = objects["analysis"]
    name = Path(str(summary["file"])).name
    r = Report(f"qdlight analyze: {name}", subtitle=str(summary["file"]))
    s = r.section("Summary")
    s.preformatted(format_summary({**summary, "figures": []}))
    s.table(
        [
            {
                "channel": c,
                "photons": ch["photons"],
                "rate (/s)": ch["rate_hz"],
                "± (/s)": ch["rate_stderr_hz"],
            }
            for c, ch in summary["channels"].items()
        ],
        caption="photons per channel",
    )
    s = r.section("Intensity trace")
    s.figure(plots.plot_trace(res.trace), "binned counts")
    if res.decays:
        s = r.section("Decays and lifetimes")
        rows = []
        for c, decay in res.decays.items():
            fit = objects["fits"].get(c)
            s.figure(plots.plot_decay(fit if fit is not None else decay), f"channel {c}")
            d = summary["decays"].get(str(c), {})
            rows.append(
                {
                    "channel": str(c),
                    "photons": d.get("photons"),
                    "tau (s)": ", ".join(format_cell(x) for x in d.get("tau_s", [])) or None,
                    "± (s)": ", ".join(format_cell(x) for x in d.get("tau_stderr_s", [])) or None,
                    "chi2/dof": d.get("reduced_chi2"),
                    "mean delay (s)": d.get("mean_delay_s"),
                    "note": d.get("fit_skipped", ""),
                }
            )
        s.table(rows)
    if res.g2 is not None:
        s = r.section("Photon correlations g2")
        s.figure(plots.plot_g2(res.g2, pulsed=res.g2_zero), "g2 between the two channels")
        if res.g2_gated is not None:
            s.figure(
                plots.plot_g2(res.g2_gated, pulsed=res.g2_zero_gated),
                "gated g2 (photons after the gate)",
            )
        g2 = summary["g2"]
        rows = []
        for key, label in (("g2_zero", "g2(0)"), ("g2_zero_gated", "gated g2(0)")):
            if key in g2:
                rows.append(
                    {
                        "quantity": label,
                        "value": g2[key],
                        "stderr": g2[key + "_stderr"],
                        "centre counts": g2[key + "_centre_counts"],
                        "mean side counts": g2[key + "_mean_side_counts"],
                        "side uniformity p": g2[key + "_side_uniformity_pvalue"],
                    }
                )
        if rows:
            s.table(rows)
    if "states" in objects:
        from qdinfer.plots_states import plot_state_resolved, plot_state_trace

        ts, sr = objects["states"]
        s = r.section("Emission states")
        s.figure(plot_state_trace(objects["stream"], ts.trajectory), "trace coloured by state")
        s.figure(plot_state_resolved(sr), "decays and g2 of each state")
        s.table(sr.table())
    r.provenance(
        file=str(summary["file"]),
        format=" ".join(str(x) for x in (summary.get("format"), summary.get("record_type")) if x),
        options=dict(options),
    )
    return r
