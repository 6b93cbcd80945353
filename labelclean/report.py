"""Self-contained HTML report of a labelling run: plots as embedded PNGs (matplotlib), no external files.

Sections: the summary, label quality of kept vs flagged rows, flagged rows per class, the
given-vs-pseudo label confusion matrix, the training curves from ``history_`` and the 20
most suspicious rows (with thumbnails when the data are images).
"""

from __future__ import annotations

import base64
import html
import io as _stdio
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .io import atomic_path, iter_batches, source_schema

#: Most classes drawn in the per-class and confusion plots (the most flagged ones).
MAX_CLASSES = 30
#: Rows listed as most suspicious.
N_SUSPICIOUS = 20

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em} td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f4f4f4} .flag{color:#b00020} img.plot{max-width:100%} img.thumb{image-rendering:pixelated}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 1em} dt{font-weight:600}
"""


def _png(fig: Any) -> str:
    buf = _stdio.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(data: str, alt: str, cls: str = "plot") -> str:
    return f'<img class="{cls}" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def label_codes(given: pa.ChunkedArray, pseudo: pa.Array) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Given and pseudo labels → integer codes into one shared, sorted class list (vectorised).

    Nulls get an extra last class ``"(none)"``. Returns ``(given_codes, pseudo_codes, names)``.

    Examples
    --------
    >>> import pyarrow as pa
    >>> g, p, names = label_codes(pa.chunked_array([["b", None, "a"]]), pa.array(["b", "c", "a"]))
    >>> g.tolist(), p.tolist(), names
    ([1, 3, 0], [1, 2, 0], ['a', 'b', 'c', '(none)'])
    """
    g = given.combine_chunks() if isinstance(given, pa.ChunkedArray) else given
    p = pseudo.combine_chunks() if isinstance(pseudo, pa.ChunkedArray) else pseudo
    g = g.dictionary_decode() if pa.types.is_dictionary(g.type) else g
    p = p.dictionary_decode() if pa.types.is_dictionary(p.type) else p
    if p.type != g.type:
        p = p.cast(g.type)
    classes = pc.drop_null(pc.unique(pa.concat_arrays([g, p])))
    classes = classes.take(pc.array_sort_indices(classes))
    k = len(classes)
    codes = [pc.index_in(a, value_set=classes).fill_null(k).to_numpy().astype(np.int64) for a in (g, p)]
    return codes[0], codes[1], [str(v) for v in classes.to_pylist()] + ["(none)"]


def plot_quality(quality: np.ndarray, clean: np.ndarray) -> str:
    """Histogram of ``label_quality`` for kept and flagged rows; base64 PNG."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.2))
    ax = fig.add_subplot()
    bins = np.linspace(0.0, 1.0, 41)
    ax.hist(quality[clean], bins=bins, alpha=0.7, label=f"kept ({int(clean.sum()):,})", color="#1f77b4")
    ax.hist(quality[~clean], bins=bins, alpha=0.7, label=f"flagged ({int((~clean).sum()):,})", color="#d62728")
    ax.set_xlabel("label quality")
    ax.set_ylabel("rows")
    ax.set_yscale("log")
    ax.legend()
    return _png(fig)


def _top_classes(codes: np.ndarray, clean: np.ndarray, n_classes: int) -> np.ndarray:
    """The classes present in ``codes``, at most :data:`MAX_CLASSES` of them (the most flagged)."""
    total = np.bincount(codes, minlength=n_classes)
    present = np.flatnonzero(total)
    if len(present) <= MAX_CLASSES:
        return present
    flagged = np.bincount(codes[~clean], minlength=n_classes)[present]
    return np.sort(present[np.argsort(-flagged, kind="stable")[:MAX_CLASSES]])


def plot_flagged_per_class(given: np.ndarray, clean: np.ndarray, names: Sequence[str]) -> str:
    """Rows and flagged rows per given class (``given``: class codes into ``names``); base64 PNG."""
    from matplotlib.figure import Figure

    shown = _top_classes(given, clean, len(names))
    total = np.bincount(given, minlength=len(names))[shown]
    flagged = np.bincount(given[~clean], minlength=len(names))[shown]
    fig = Figure(figsize=(max(5, 0.35 * len(shown) + 2), 3.2))
    ax = fig.add_subplot()
    x = np.arange(len(shown))
    ax.bar(x, total, color="#c7d7ea", label="rows")
    ax.bar(x, flagged, color="#d62728", label="flagged")
    ax.set_xticks(x, [names[c] for c in shown], rotation=45 if len(shown) > 10 else 0, ha="right")
    ax.set_xlabel("given label")
    ax.set_ylabel("rows")
    ax.legend()
    return _png(fig)


def plot_confusion(given: np.ndarray, pseudo: np.ndarray, clean: np.ndarray, names: Sequence[str]) -> str:
    """Given (rows) vs pseudo (columns) labels as class codes into ``names``, log colour scale; base64 PNG."""
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    shown = np.union1d(_top_classes(given, clean, len(names)), _top_classes(pseudo, clean, len(names)))
    lookup = np.full(len(names), -1)
    lookup[shown] = np.arange(len(shown))
    gi, pi = lookup[given], lookup[pseudo]
    ok = (gi >= 0) & (pi >= 0)
    k = len(shown)
    matrix = np.bincount(gi[ok] * k + pi[ok], minlength=k * k).reshape(k, k)
    size = max(4.0, 0.4 * k + 2)
    fig = Figure(figsize=(size + 1, size))
    ax = fig.add_subplot()
    im = ax.imshow(np.where(matrix > 0, matrix, np.nan), cmap="Blues", norm=LogNorm(vmin=1, vmax=max(2, matrix.max())))
    if k <= 15:
        for i, j in zip(*np.nonzero(matrix), strict=True):
            color = "white" if matrix[i, j] > matrix.max() / 3 else "black"
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color=color)
    labels = [names[c] for c in shown]
    ax.set_xticks(range(k), labels, rotation=45 if k > 10 else 0, ha="right")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("pseudo label")
    ax.set_ylabel("given label")
    fig.colorbar(im, ax=ax, label="rows")
    return _png(fig)


def plot_history(history: Sequence[dict[str, Any]]) -> str | None:
    """One panel per numeric quantity of ``history_`` (loss, forget rate, ...), coloured by phase; base64 PNG."""
    from matplotlib.figure import Figure

    skip = {"epoch", "seconds"}
    keys = [
        k
        for k in dict.fromkeys(k for h in history for k in h)
        if k not in skip and any(isinstance(h.get(k), (int, float)) and not isinstance(h.get(k), bool) for h in history)
    ]
    if not keys:
        return None
    fig = Figure(figsize=(4 * min(len(keys), 3), 3 * ((len(keys) + 2) // 3)))
    phases = list(dict.fromkeys(str(h.get("phase", "training")) for h in history))
    colors = dict(zip(phases, ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"] * 3, strict=False))
    for n, key in enumerate(keys):
        ax = fig.add_subplot((len(keys) + 2) // 3, min(len(keys), 3), n + 1)
        for phase in phases:
            pts = [
                (i, h[key])
                for i, h in enumerate(history)
                if str(h.get("phase", "training")) == phase and isinstance(h.get(key), (int, float))
            ]
            if pts:
                x, y = zip(*pts, strict=True)
                ax.plot(x, y, marker=".", color=colors[phase], label=phase)
        ax.set_title(key)
        ax.set_xlabel("epoch (all phases)")
        if len(phases) > 1:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def thumbnail(image: np.ndarray, size: int = 64) -> str:
    """A ``C×H×W`` float image in [0, 1] → base64 PNG, enlarged to about ``size`` pixels."""
    from PIL import Image

    arr = np.clip(np.asarray(image, dtype=np.float32) * 255.0, 0, 255).astype(np.uint8)
    img = Image.fromarray(arr[0]) if arr.shape[0] == 1 else Image.fromarray(arr[:3].transpose(1, 2, 0))
    scale = max(1, size // max(img.size))
    img = img.resize((img.size[0] * scale, img.size[1] * scale), Image.NEAREST)
    buf = _stdio.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _context_columns(source: Any, rows: np.ndarray, exclude: set[str], limit: int = 4) -> dict[str, list[Any]]:
    """Up to ``limit`` scalar columns of ``source`` that are neither features nor the label, at ``rows``."""
    if source is None:
        return {}
    schema = source_schema(source)
    names = [
        f.name
        for f in schema
        if f.name not in exclude
        and not pa.types.is_nested(f.type)
        and not pa.types.is_binary(f.type)
        and not pa.types.is_large_binary(f.type)
    ][:limit]
    if not names:
        return {}
    order = np.sort(rows)
    out: dict[str, list[Any]] = {n: [] for n in names}
    start = 0
    for batch in iter_batches(source, names):  # stream, take the few rows needed
        stop = start + batch.num_rows
        inside = order[(order >= start) & (order < stop)] - start
        if inside.size:
            taken = batch.take(pa.array(inside))
            for j, n in enumerate(names):
                out[n].extend(taken.column(j).to_pylist())
        start = stop
    position = {r: i for i, r in enumerate(order)}
    return {n: [v[position[r]] for r in rows] for n, v in out.items()}


def report_html(result: Any, source: Any = None, title: str | None = None) -> str:
    """The report of a :class:`labelclean.api.LabelingResult` as one HTML string."""
    added = result.added
    clean = added.column("is_clean").to_numpy(zero_copy_only=False).astype(bool)
    quality = added.column("label_quality").to_numpy(zero_copy_only=False).astype(np.float32)
    given, pseudo, names = label_codes(result.labels, added.column("pseudo_label"))
    s = result.summary
    title = title or f"labelclean {result.task} report"
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
        "<dl>",
    ]
    facts = {"rows": f"{s['rows']:,}", "flagged": f"{s['flagged']:,} ({s['flagged_fraction']:.1%})"}
    for key, name in (("noise_rate", "estimated noise rate"), ("class_prior", "estimated class prior")):
        if s.get(key) is not None:
            facts[name] = f"{s[key]:.3f}"
    if s.get("unlabeled"):
        facts["unlabeled rows"] = f"{s['unlabeled']:,}"
    facts["features"] = f"{', '.join(s['features'])} (row shape {tuple(s['feature_shape'])})"
    if s.get("skipped_columns"):
        facts["skipped columns"] = "; ".join(f"{k}: {v}" for k, v in s["skipped_columns"].items())
    facts["estimator"] = repr(result.estimator)
    parts += [f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts.items()] + ["</dl>"]

    parts += ["<h2 id='quality'>Label quality: kept vs flagged</h2>", _img(plot_quality(quality, clean), "quality")]
    parts += [
        "<h2 id='per-class'>Flagged rows per class</h2>",
        _img(plot_flagged_per_class(given, clean, names), "flagged per class"),
    ]
    parts += [
        "<h2 id='confusion'>Given vs pseudo labels</h2>",
        _img(plot_confusion(given, pseudo, clean, names), "confusion matrix"),
    ]
    history = getattr(result.estimator, "history_", None) or []
    curves = plot_history(history)
    parts += [
        "<h2 id='training'>Training curves</h2>",
        _img(curves, "training curves") if curves else "<p>No training history recorded.</p>",
    ]

    rows = np.argsort(quality, kind="stable")[:N_SUSPICIOUS]
    exclude = set(result.plan.names) | set(added.column_names) | {s.get("label_column", "")}
    context = _context_columns(source, rows, exclude)
    images = result.plan.is_image and getattr(result, "X", None) is not None
    head = ["row"] + (["image"] if images else []) + ["given", "pseudo", "label quality", "kept"] + list(context)
    parts += [f"<h2 id='suspicious'>The {len(rows)} most suspicious rows</h2>", "<table><tr>"]
    parts += [f"<th>{html.escape(h)}</th>" for h in head] + ["</tr>"]
    for n, r in enumerate(rows):
        cells = [str(int(r))]
        if images:
            cells.append(_img(thumbnail(result.X[r]), f"row {r}", cls="thumb"))
        cells += [
            html.escape(names[given[r]]),
            html.escape(names[pseudo[r]]),
            f"{quality[r]:.3f}",
            "yes" if clean[r] else "<span class='flag'>no</span>",
        ]
        cells += [html.escape(str(v[n])) for v in context.values()]
        parts.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)


def write_report(path: str | os.PathLike, result: Any, source: Any = None) -> str:
    """Write :func:`report_html` to ``path`` atomically; return the path."""
    text = report_html(result, source)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return str(path)
