"""Self-contained HTML report of a labelling run: plots as embedded PNGs (matplotlib), no external files.

Sections: a header with the run (input, rows, date, labelclean version, command, parameters,
run time, the fit's seconds by phase), the summary, label quality of kept vs flagged rows,
flagged rows per class, the per-class noise table (given → corrected), the given-vs-pseudo
label confusion matrix, the training curves from ``history_`` and the 20 most suspicious rows (with the feature values
that speak most for the proposed label, or thumbnails when the data are images).

The suspicious rows are ranked by ``label_quality`` and then, to break its ties (the
cross-fitted models often give many rows a quality of exactly 0), by the margin of the
model's probability of the label the quality refers to over the best other class
(:func:`rank_suspicious`). The feature evidence of a row is described in :func:`feature_evidence`.
"""

from __future__ import annotations

import base64
import html
import io as _stdio
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .io import atomic_path, iter_batches, source_schema

#: Most classes drawn in the per-class and confusion plots (the most flagged ones).
MAX_CLASSES = 30
#: Rows listed as most suspicious.
N_SUSPICIOUS = 20
#: Most rows tied at the cut-off quality whose model probabilities are computed to break the tie.
MAX_TIE_ROWS = 50_000
#: Feature values shown beside each suspicious row.
N_EVIDENCE = 3
#: Most classes listed in the per-class noise table (the most flagged ones).
MAX_TABLE_CLASSES = 100
#: Confusion matrices up to this many classes have their counts written in the cells.
MAX_ANNOTATED = 25

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em} td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f4f4f4} .flag{color:#b00020} img.plot{max-width:100%} img.thumb{image-rendering:pixelated}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 1em} dt{font-weight:600}
header{background:#f6f8fa;border:1px solid #ddd;border-radius:6px;padding:.6em 1.2em;margin-bottom:1em}
header h1{margin:.2em 0 .5em} code{font-size:.9em;word-break:break-all}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums} .ev{display:block;white-space:nowrap}
.ev small,.note{color:#666} tr.total td{font-weight:600;border-top:2px solid #bbb}
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


def _count_text(v: int) -> str:
    """A cell count short enough for its cell: ``987``, ``12.3k``, ``4.6M``."""
    if v < 10_000:
        return str(v)
    if v < 1_000_000:
        return f"{v / 1000:.3g}k"
    return f"{v / 1_000_000:.3g}M"


def text_colors(rgba: np.ndarray) -> np.ndarray:
    """``"white"`` on dark and ``"black"`` on light cell colours (rows of RGB(A) in [0, 1]).

    The choice follows the colour's relative luminance (WCAG 2): white text where the cell
    is darker than the luminance at which black and white text have equal contrast.

    Examples
    --------
    >>> text_colors(np.array([[0.03, 0.19, 0.42, 1.0], [0.97, 0.98, 1.0, 1.0]])).tolist()
    ['white', 'black']
    """
    c = np.asarray(rgba, dtype=np.float64)[:, :3]
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    luminance = linear @ np.array([0.2126, 0.7152, 0.0722])
    return np.where(luminance < 0.179, "white", "black")


def plot_confusion(given: np.ndarray, pseudo: np.ndarray, clean: np.ndarray, names: Sequence[str]) -> str:
    """Given (rows) vs pseudo (columns) labels as class codes into ``names``, log colour scale; base64 PNG.

    Up to :data:`MAX_ANNOTATED` classes every non-empty cell shows its count, in white on dark
    cells and black on light ones, with the font and the cells scaled to the number of classes.
    """
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    shown = np.union1d(_top_classes(given, clean, len(names)), _top_classes(pseudo, clean, len(names)))
    lookup = np.full(len(names), -1)
    lookup[shown] = np.arange(len(shown))
    gi, pi = lookup[given], lookup[pseudo]
    ok = (gi >= 0) & (pi >= 0)
    k = len(shown)
    matrix = np.bincount(gi[ok] * k + pi[ok], minlength=k * k).reshape(k, k)
    cell = 0.6 if k <= MAX_ANNOTATED else 0.35  # inches per class
    size = max(4.5, cell * k + 2)
    fig = Figure(figsize=(size + 1.2, size))
    ax = fig.add_subplot()
    cmap, norm = colormaps["Blues"], LogNorm(vmin=1, vmax=max(2, matrix.max()))
    im = ax.imshow(np.where(matrix > 0, matrix, np.nan), cmap=cmap, norm=norm)
    if k <= MAX_ANNOTATED:
        rows, cols = np.nonzero(matrix)
        values = matrix[rows, cols]
        colors = text_colors(cmap(norm(values)))
        fontsize = float(np.clip(15 - 0.35 * k, 8, 12))
        for i, j, v, c in zip(rows, cols, values, colors, strict=True):
            weight = "bold" if i == j else "normal"
            ax.text(j, i, _count_text(int(v)), ha="center", va="center", fontsize=fontsize, color=c, weight=weight)
    labels = [names[c] for c in shown]
    tick = float(np.clip(14 - 0.3 * k, 8, 11))
    ax.set_xticks(range(k), labels, rotation=45 if k > 6 else 0, ha="right" if k > 6 else "center", fontsize=tick)
    ax.set_yticks(range(k), labels, fontsize=tick)
    ax.set_xlabel("pseudo label (corrected)")
    ax.set_ylabel("given label")
    fig.colorbar(im, ax=ax, label="rows", shrink=0.8)
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


# ---------------------------------------------------------------------------
# The run: header metadata
# ---------------------------------------------------------------------------


def command_line(task: str, input: str | os.PathLike) -> str:
    """The command that ran: this process's own arguments when it is ``labelclean TASK ...``.

    Otherwise (a Python call of :func:`labelclean.api.clean_file`) the equivalent
    ``labelclean TASK INPUT``; the parameters are listed beside it in the report.
    """
    argv = list(sys.argv)
    prog = os.path.basename(argv[0]) if argv else ""
    if (
        len(argv) > 1
        and argv[1] == task
        and (prog == "labelclean" or argv[0].endswith(os.path.join("labelclean", "__main__.py")))
    ):
        return shlex.join(["labelclean", *argv[1:]])
    return shlex.join(["labelclean", task, str(input)])


def run_metadata(
    task: str,
    input: str | os.PathLike,
    parameters: Mapping[str, Any] | None = None,
    seconds: float | None = None,
    output: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The run's facts for the report header (:func:`report_html` ``metadata``).

    Parameters
    ----------
    task : str
        ``"filter"``, ``"selftrain"`` or ``"pu"``.
    input : str or path-like
        The input file.
    parameters : mapping or None
        The options and estimator parameters of the run; entries whose value is None
        (a default left to the estimator) are not shown.
    seconds : float or None
        Run time so far (reading, fitting, writing the output).
    output : str, path-like or None
        The output file.

    Returns
    -------
    dict
        ``input``, ``command``, ``parameters``, ``seconds``, ``output`` and ``date``.
    """
    return {
        "input": str(input),
        "output": None if output is None else str(output),
        "command": command_line(task, input),
        "parameters": {k: v for k, v in (parameters or {}).items() if v is not None},
        "seconds": seconds,
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def _seconds_text(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


def phase_text(phase_seconds: Mapping[str, float] | None, fit_seconds: float | None = None) -> str:
    """The seconds of each phase of a fit on one line, e.g. ``"warm-up 1.2 s; co-teaching 8.0 s; other 0.3 s"``.

    ``phase_seconds`` is an estimator's ``phase_seconds_``; with ``fit_seconds`` (the whole
    fit) the time outside every phase is added as ``other``. Empty when there are no phases.

    Examples
    --------
    >>> phase_text({"warm-up": 1.25, "co-teaching": 8.0}, fit_seconds=9.5)
    'warm-up 1.2 s; co-teaching 8.0 s; other 0.2 s'
    """
    if not phase_seconds:
        return ""
    parts = [f"{name} {_seconds_text(float(v))}" for name, v in phase_seconds.items()]
    if fit_seconds is not None:
        parts.append(f"other {_seconds_text(max(float(fit_seconds) - sum(phase_seconds.values()), 0.0))}")
    return "; ".join(parts)  # phase names may hold commas ("teacher, fold 1/2")


def _header(result: Any, metadata: Mapping[str, Any], title: str) -> list[str]:
    """The ``<header>``: what ran on what, when, with which version, and how long it took."""
    from . import __version__

    s = result.summary
    meta = dict(metadata)
    items: list[tuple[str, str, str]] = []  # (id, label, escaped html)
    source = meta.pop("input", None)
    items.append(
        ("input", "input", html.escape(str(source)) if source else "<span class='note'>in-memory table</span>")
    )
    items.append(("rows", "rows", f"{s['rows']:,}"))
    date = meta.pop("date", None) or datetime.now().astimezone().isoformat(timespec="seconds")
    items.append(("date", "date", html.escape(str(date))))
    items.append(("version", "labelclean version", html.escape(__version__)))
    command = meta.pop("command", None)
    if command:
        items.append(("command", "command", f"<code>{html.escape(str(command))}</code>"))
    params = meta.pop("parameters", None)
    if params is None:  # a Python call: the estimator's parameters that differ from its defaults
        est = result.estimator
        try:
            defaults = type(est)().get_params(deep=False)
            params = {k: v for k, v in est.get_params(deep=False).items() if repr(v) != repr(defaults.get(k))}
        except (TypeError, ValueError, AttributeError):
            params = {}
        params = {"task": result.task, "label": s.get("label_column"), **params}
    text = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "defaults"
    items.append(("parameters", "parameters", f"<code>{html.escape(text)}</code>"))
    seconds = meta.pop("seconds", None)
    if seconds is not None:
        items.append(("seconds", "run time", html.escape(_seconds_text(float(seconds)))))
    else:
        parts = [(k, s.get(f"{k}_seconds")) for k in ("read", "pretrain", "fit")]
        parts = [(k, v) for k, v in parts if v is not None]
        total = sum(v for _, v in parts)
        detail = ", ".join(f"{k} {_seconds_text(v)}" for k, v in parts)
        items.append(("seconds", "run time", html.escape(f"{_seconds_text(total)} ({detail})")))
    phases = phase_text(getattr(result.estimator, "phase_seconds_", None), s.get("fit_seconds"))
    if phases:
        items.append(("phases", "fit by phase", html.escape(phases)))
    output = meta.pop("output", None)
    if output:
        items.append(("output", "output", html.escape(str(output))))
    for k, v in meta.items():  # anything else the caller passed
        if v is not None:
            items.append((f"meta-{html.escape(str(k))}", str(k), html.escape(str(v))))
    out = [f"<header><h1>{html.escape(title)}</h1><dl id='run'>"]
    out += [f"<dt>{html.escape(label)}</dt><dd id='run-{ident}'>{value}</dd>" for ident, label, value in items]
    return [*out, "</dl></header>"]


# ---------------------------------------------------------------------------
# The most suspicious rows: ranking without ties, feature evidence
# ---------------------------------------------------------------------------


def rank_suspicious(quality: np.ndarray, margin: np.ndarray, n: int = N_SUSPICIOUS) -> np.ndarray:
    """The ``n`` rows to show first: lowest ``quality``, ties broken by the lowest ``margin``, then by row.

    Parameters
    ----------
    quality : ndarray of shape (n_rows,)
        ``label_quality``.
    margin : ndarray of shape (n_rows,)
        The secondary key (lower is more suspicious), e.g. the model's probability of the
        label minus that of the best other class.
    n : int
        Rows returned.

    Returns
    -------
    ndarray of int
        Row positions, most suspicious first.

    Examples
    --------
    >>> rank_suspicious(np.array([0.0, 0.5, 0.0, 0.0]), np.array([-0.2, -0.9, -0.7, -0.2]), 3).tolist()
    [2, 0, 3]
    """
    quality, margin = np.asarray(quality), np.asarray(margin)
    order = np.lexsort((np.arange(len(quality)), margin, quality))
    return order[:n]


def _candidates(quality: np.ndarray, n: int) -> np.ndarray:
    """Every row whose quality is at most the ``n``-th lowest (all rows tied there), at most :data:`MAX_TIE_ROWS`."""
    if len(quality) <= n:
        return np.arange(len(quality))
    cut = np.partition(quality, n - 1)[n - 1]
    rows = np.flatnonzero(quality <= cut)
    if len(rows) > MAX_TIE_ROWS:
        rows = np.sort(rows[np.argsort(quality[rows], kind="stable")[:MAX_TIE_ROWS]])
    return rows


def _class_columns(result: Any, pseudo: np.ndarray, n_names: int) -> np.ndarray | None:
    """Report class code of each column of the estimator's ``predict_proba`` (-1 where unknown)."""
    est = result.estimator
    classes = getattr(est, "classes_", None)
    if classes is None:
        return None
    if result.task == "pu":  # columns [0, 1]: the negative and the positive label value
        est_pseudo = np.asarray(getattr(est, "pseudo_labels_", []))
        cols = np.full(2, -1)
        if len(est_pseudo) == len(pseudo):
            for j in (0, 1):
                hit = np.flatnonzero(est_pseudo == j)
                cols[j] = pseudo[hit[0]] if hit.size else -1
        return cols
    codes = np.asarray(classes)
    if not np.issubdtype(codes.dtype, np.integer):
        return None
    return np.where((codes >= 0) & (codes < n_names - 1), codes, -1)


def _model_proba(result: Any, rows: np.ndarray) -> np.ndarray | None:
    """The fitted estimator's ``predict_proba`` at ``rows`` (through the encoder if the run had one), or None."""
    X = getattr(result, "X", None)
    if X is None or not len(rows) or not hasattr(result.estimator, "predict_proba"):
        return None
    try:
        Xr = X[rows]
        if getattr(result, "encoder", None) is not None:
            Xr = result.encoder.transform(Xr)
        return np.asarray(result.estimator.predict_proba(Xr), dtype=np.float64)
    except (AttributeError, TypeError, ValueError, RuntimeError):
        return None


def suspicious_rows(
    result: Any, quality: np.ndarray, given: np.ndarray, pseudo: np.ndarray, names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The :data:`N_SUSPICIOUS` most suspicious rows, their margins and their proposed classes.

    The margin is the model's probability of the reference label minus its highest
    probability of another class (from ``predict_proba``, computed only for the rows tied at
    or under the cut-off quality). The reference label is the one ``label_quality`` is about:
    the given label (``filter``, ``selftrain``), the pseudo-label for ``pu`` and for rows
    without a given label. The proposed class is the pseudo-label where it differs from the
    given label, else the model's most probable other class.

    Returns
    -------
    rows, margin, proposed : ndarray
        Row positions (most suspicious first), their margins (NaN without probabilities) and
        proposed class codes into ``names`` (-1 where none).
    """
    candidates = _candidates(quality, N_SUSPICIOUS)
    proba = _model_proba(result, candidates)
    cols = _class_columns(result, pseudo, len(names)) if proba is not None else None
    margin = np.full(len(candidates), np.nan)
    best_other = np.full(len(candidates), -1)
    if proba is not None and cols is not None and proba.shape[1] == len(cols):
        lookup = np.full(len(names), -1)
        lookup[cols[cols >= 0]] = np.flatnonzero(cols >= 0)
        ref_code = pseudo[candidates] if result.task == "pu" else given[candidates]
        ref = lookup[ref_code]
        ref = np.where(ref >= 0, ref, lookup[pseudo[candidates]])
        idx = np.arange(len(candidates))
        has = ref >= 0
        others = proba.copy()
        others[idx[has], ref[has]] = -np.inf
        other = np.argmax(others, axis=1)
        margin = np.where(has, proba[idx, np.maximum(ref, 0)] - others[idx, other], np.nan)
        given_col = lookup[given[candidates]]
        alt = others.copy()  # the best class other than the given one
        alt[idx[given_col >= 0], given_col[given_col >= 0]] = -np.inf
        best_other = cols[np.argmax(alt, axis=1)]
    order = rank_suspicious(quality[candidates], np.nan_to_num(margin, nan=np.inf))
    rows = candidates[order]
    proposed = np.where(pseudo[rows] != given[rows], pseudo[rows], best_other[order])
    proposed = np.where(proposed == given[rows], -1, proposed)
    return rows, margin[order], proposed


def _feature_groups(plan: Any) -> list[tuple[str, str, slice, list[str] | None]]:
    """``(name, kind, columns of X, categories)`` per displayed feature: one per number, per embedding
    component, and one per one-hot column."""
    groups: list[tuple[str, str, slice, list[str] | None]] = []
    start = 0
    for fc in plan.columns:
        if fc.kind == "onehot":
            cats = [str(v) for v in fc.categories.to_pylist()] if fc.categories is not None else None
            groups.append((fc.name, "onehot", slice(start, start + fc.width), cats))
        elif fc.width == 1:
            groups.append((fc.name, "numeric", slice(start, start + 1), None))
        else:
            groups += [(f"{fc.name}[{i}]", "numeric", slice(start + i, start + i + 1), None) for i in range(fc.width)]
        start += fc.width
    return groups


def class_profiles(
    X: np.ndarray, codes: np.ndarray, k: int, block: int = 65_536
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class feature means, the pooled within-class standard deviation and the class sizes.

    Rows with a negative code are left out. Vectorised block by block (sorted
    ``np.add.reduceat``), so no copy of ``X`` is made.

    Parameters
    ----------
    X : ndarray of shape (n_rows, d)
    codes : ndarray of int, shape (n_rows,)
        Class of each row in ``range(k)``, or negative to skip the row.
    k : int
        Number of classes.

    Returns
    -------
    means : ndarray of shape (k, d)
    sd : ndarray of shape (d,)
    counts : ndarray of shape (k,)

    Examples
    --------
    >>> means, sd, counts = class_profiles(np.array([[0.0], [2.0], [10.0], [12.0]]), np.array([0, 0, 1, 1]), 2)
    >>> means.ravel().tolist(), sd.tolist(), counts.tolist()
    ([1.0, 11.0], [1.0], [2, 2])
    """
    d = X.shape[1]
    sums, squares = np.zeros((k, d)), np.zeros((k, d))
    counts = np.zeros(k, dtype=np.int64)
    for s in range(0, len(codes), block):
        c = codes[s : s + block]
        keep = np.flatnonzero(c >= 0)
        if not keep.size:
            continue
        order = keep[np.argsort(c[keep], kind="stable")]
        cs = c[order]
        starts = np.flatnonzero(np.r_[True, cs[1:] != cs[:-1]])
        x = np.asarray(X[s : s + block][order], dtype=np.float64)
        sums[cs[starts]] += np.add.reduceat(x, starts, axis=0)
        squares[cs[starts]] += np.add.reduceat(x * x, starts, axis=0)
        counts += np.bincount(cs, minlength=k)
    means = sums / np.maximum(counts, 1)[:, None]
    within = (squares.sum(axis=0) - (counts[:, None] * means**2).sum(axis=0)) / max(int(counts.sum()), 1)
    return means, np.sqrt(np.maximum(within, 0.0)), counts


def feature_evidence(
    x: np.ndarray,
    given: int,
    proposed: int,
    means: np.ndarray,
    sd: np.ndarray,
    counts: np.ndarray,
    groups: Sequence[tuple[str, str, slice, list[str] | None]],
    n: int = N_EVIDENCE,
) -> list[tuple[str, str, float, float, float]]:
    """The features of one row that speak most for the proposed class against the given one.

    A feature's score is ``(|x - mean_given| - |x - mean_proposed|) / sd``: how many pooled
    within-class standard deviations closer the row's value is to the proposed class's
    mean than to the given class's (means and ``sd`` over the kept rows, by their
    corrected label, :func:`class_profiles`). A one-hot column scores at its best
    category. The ``n`` best features with a positive score are returned.

    Returns
    -------
    list of (name, value, given mean, proposed mean, score)
        ``value`` is the row's value as text; for a one-hot column the means are the shares
        of the two classes having the row's category.
    """
    if given < 0 or proposed < 0 or given >= len(counts) or proposed >= len(counts):
        return []
    if counts[given] == 0 or counts[proposed] == 0:
        return []
    x = np.asarray(x, dtype=np.float64).ravel()
    safe = np.where(sd > 0, sd, np.inf)
    score = (np.abs(x - means[given]) - np.abs(x - means[proposed])) / safe
    out = []
    for name, kind, cols, cats in groups:
        if kind == "onehot":
            block = x[cols]
            if not block.any():
                continue
            at = int(np.argmax(block))
            value = cats[at] if cats is not None and at < len(cats) else str(at)
            j = cols.start + at
            out.append((name, value, means[given, j], means[proposed, j], float(score[cols].max())))
        else:
            j = cols.start
            out.append((name, f"{x[j]:.4g}", means[given, j], means[proposed, j], float(score[j])))
    out = [e for e in out if e[4] > 0]
    out.sort(key=lambda e: -e[4])
    return out[:n]


def _evidence_html(evidence: Sequence[tuple[str, str, float, float, float]], g: str, b: str, onehot: set[str]) -> str:
    if not evidence:
        return "<span class='note'>—</span>"
    cells = []
    for name, value, mg, mb, _ in evidence:
        if name in onehot:
            ctx = f"{html.escape(g)} {mg:.0%} · {html.escape(b)} {mb:.0%}"
        else:
            ctx = f"{html.escape(g)} {mg:.3g} · {html.escape(b)} {mb:.3g}"
        cells.append(
            f"<span class='ev'><b>{html.escape(name)}</b> = {html.escape(value)} <small>({ctx})</small></span>"
        )
    return "".join(cells)


# ---------------------------------------------------------------------------
# Per-class noise
# ---------------------------------------------------------------------------


def _class_noise(result: Any, n_names: int) -> np.ndarray | None:
    """``class_noise_`` of the estimator by report class code (NaN where unknown), or None."""
    est = result.estimator
    noise = getattr(est, "class_noise_", None)
    classes = getattr(est, "classes_", None)
    if noise is None or classes is None or result.task == "pu":
        return None
    noise, codes = np.asarray(noise, dtype=np.float64), np.asarray(classes)
    if noise.shape != codes.shape or not np.issubdtype(codes.dtype, np.integer):
        return None
    out = np.full(n_names, np.nan)
    ok = (codes >= 0) & (codes < n_names - 1)
    out[codes[ok]] = noise[ok]
    return out


def noise_table(
    given: np.ndarray,
    pseudo: np.ndarray,
    clean: np.ndarray,
    names: Sequence[str],
    class_noise: np.ndarray | None = None,
    noise_rate: float | None = None,
) -> str:
    """Per-class table, given → corrected: rows, flagged, estimated noise, relabeled away and in, corrected rows.

    Classes are the codes into ``names`` (the last, ``"(none)"``, means no label); at most
    :data:`MAX_TABLE_CLASSES` of them, the most flagged. Vectorised with ``np.bincount``.
    """
    k, n = len(names), len(given)
    n_given = np.bincount(given, minlength=k)
    n_flag = np.bincount(given[~clean], minlength=k)
    changed = given != pseudo
    away = np.bincount(given[changed], minlength=k)
    into = np.bincount(pseudo[changed], minlength=k)
    n_pseudo = np.bincount(pseudo, minlength=k)
    present = np.flatnonzero((n_given > 0) | (n_pseudo > 0))
    shown = present
    if len(present) > MAX_TABLE_CLASSES:
        shown = np.sort(present[np.argsort(-n_flag[present], kind="stable")[:MAX_TABLE_CLASSES]])
    has_noise = class_noise is not None and np.isfinite(class_noise).any()

    def share(a: int, b: int) -> str:
        return f"{a:,} <span class='note'>({a / b:.1%})</span>" if b else f"{a:,}"

    head = ["class", "given rows", "flagged (of given)"]
    head += ["estimated noise"] if has_noise else []
    head += ["relabeled away", "relabeled in", "corrected rows"]
    out = ["<table id='noise-table'><tr>"]
    out += [f"<th{'' if h == 'class' else ' class=num'}>{html.escape(h)}</th>" for h in head] + ["</tr>"]
    for c in shown:
        cells = [html.escape(names[c]), share(int(n_given[c]), n), share(int(n_flag[c]), int(n_given[c]))]
        if has_noise:
            v = class_noise[c]
            cells.append(f"{v:.1%}" if np.isfinite(v) else "—")
        cells += [f"{int(away[c]):,}", f"{int(into[c]):,}", share(int(n_pseudo[c]), n)]
        out.append(
            "<tr>" + "".join(f"<td{'' if i == 0 else ' class=num'}>{v}</td>" for i, v in enumerate(cells)) + "</tr>"
        )
    total = ["all", f"{n:,}", share(int(n_flag.sum()), n)]
    if has_noise:
        total.append(f"{noise_rate:.1%}" if noise_rate is not None and np.isfinite(noise_rate) else "—")
    total += [f"{int(changed.sum()):,}", f"{int(changed.sum()):,}", f"{n:,}"]
    out.append(
        "<tr class='total'>"
        + "".join(f"<td{'' if i == 0 else ' class=num'}>{v}</td>" for i, v in enumerate(total))
        + "</tr>"
    )
    out.append("</table>")
    if len(shown) < len(present):
        out.append(f"<p class='note'>The {len(shown)} most flagged of {len(present)} classes.</p>")
    return "\n".join(out)


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------


def report_html(
    result: Any, source: Any = None, title: str | None = None, metadata: Mapping[str, Any] | None = None
) -> str:
    """The report of a :class:`labelclean.api.LabelingResult` as one HTML string.

    Parameters
    ----------
    result : LabelingResult
    source : pyarrow.Table, pyarrow.parquet.ParquetFile or None
        The input, for the other scalar columns shown beside the suspicious rows (e.g. an id).
    title : str or None
        Default: ``labelclean TASK report`` and the input's file name.
    metadata : mapping or None
        The run's facts for the header (see :func:`run_metadata`): ``input``, ``command``,
        ``parameters``, ``seconds``, ``output``, ``date``; other keys are listed as they are.
        Without it (a Python call) the header shows the estimator's non-default parameters and
        the reading and fitting time of the summary.

    Returns
    -------
    str
    """
    metadata = dict(metadata or {})
    added = result.added
    clean = added.column("is_clean").to_numpy(zero_copy_only=False).astype(bool)
    quality = added.column("label_quality").to_numpy(zero_copy_only=False).astype(np.float32)
    given, pseudo, names = label_codes(result.labels, added.column("pseudo_label"))
    s = result.summary
    if title is None:
        title = f"labelclean {result.task} report"
        if metadata.get("input"):
            title += f" — {os.path.basename(str(metadata['input']))}"
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        *_header(result, metadata, title),
        "<h2 id='summary'>Summary</h2><dl>",
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
    noise_rate = getattr(result.estimator, "noise_rate_", None)
    parts += [
        "<h2 id='noise'>Noise per class: given → corrected</h2>",
        "<p class='note'>Given rows per class; flagged: rows whose given label the model doubts; estimated "
        "noise: the estimator's share of wrong labels in the class (<code>class_noise_</code>); relabeled: rows "
        "whose pseudo-label differs from the given label, counted at the given (away) and at the new (in) "
        "class; corrected rows: rows per pseudo-label.</p>",
        noise_table(given, pseudo, clean, names, _class_noise(result, len(names)), noise_rate),
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
    parts += _suspicious_section(result, source, quality, clean, given, pseudo, names)
    parts.append("</body></html>")
    return "\n".join(parts)


def _suspicious_section(
    result: Any,
    source: Any,
    quality: np.ndarray,
    clean: np.ndarray,
    given: np.ndarray,
    pseudo: np.ndarray,
    names: Sequence[str],
) -> list[str]:
    """The ranked table of the most suspicious rows, with feature evidence or thumbnails."""
    rows, margin, proposed = suspicious_rows(result, quality, given, pseudo, names)
    s = result.summary
    exclude = set(result.plan.names) | set(result.added.column_names) | {s.get("label_column", "")}
    context = _context_columns(source, rows, exclude)
    X = getattr(result, "X", None)
    images = result.plan.is_image and X is not None
    evidence = not result.plan.is_image and X is not None and X.ndim == 2
    if evidence:
        groups = _feature_groups(result.plan)
        if sum(g[2].stop - g[2].start for g in groups) != X.shape[1]:
            evidence = False
    if evidence:
        means, sd, counts = class_profiles(X, np.where(clean, pseudo, -1), len(names))
        onehot = {g[0] for g in groups if g[1] == "onehot"}
    has_margin = bool(np.isfinite(margin).any())
    head = ["rank", "row"] + (["image"] if images else []) + ["given", "proposed", "label quality"]
    head += ["margin"] if has_margin else []
    head += ["kept"] + (["features for the proposed label"] if evidence else []) + list(context)
    parts = [
        f"<h2 id='suspicious'>The {len(rows)} most suspicious rows</h2>",
        "<p class='note'>Ranked by label quality (the probability that the given label is right), ties broken "
        "by the margin: the model's probability of the label minus its best other class. Proposed: the "
        "pseudo-label, or the model's best other class where the pseudo-label keeps the given one."
        + (
            " Features: the values closest to the proposed class's mean relative to the given class's "
            "(in pooled within-class standard deviations over the kept rows), with both class means."
            if evidence
            else ""
        )
        + "</p>",
        "<table id='suspicious-table'><tr>",
    ]
    parts += [f"<th>{html.escape(h)}</th>" for h in head] + ["</tr>"]
    for n, r in enumerate(rows):
        g, b = int(given[r]), int(proposed[n])
        q, m = float(quality[r]), float(margin[n])
        cells = [str(n + 1), str(int(r))]
        if images:
            cells.append(_img(thumbnail(X[r]), f"row {r}", cls="thumb"))
        cells += [html.escape(names[g]), html.escape(names[b]) if b >= 0 else "<span class='note'>—</span>"]
        cells.append(f"{q:.3g}")
        if has_margin:
            cells.append(f"{m:+.4f}" if np.isfinite(m) else "—")
        cells.append("yes" if clean[r] else "<span class='flag'>no</span>")
        if evidence:
            ev = feature_evidence(X[r], g, b, means, sd, counts, groups)
            cells.append(_evidence_html(ev, names[g], names[b] if b >= 0 else "", onehot))
        cells += [html.escape(str(v[n])) for v in context.values()]
        attrs = f" data-row='{int(r)}' data-quality='{q!r}' data-margin='{m!r}'"
        parts.append(f"<tr class='suspect'{attrs}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    parts.append("</table>")
    return parts


def write_report(
    path: str | os.PathLike, result: Any, source: Any = None, metadata: Mapping[str, Any] | None = None
) -> str:
    """Write :func:`report_html` to ``path`` atomically; return the path.

    ``metadata``: the run's facts for the header (see :func:`run_metadata`); optional.
    """
    text = report_html(result, source, metadata=metadata)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return str(path)
