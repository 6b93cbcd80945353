"""Pure pieces of the suite: medians and spreads over seeds, the suite's targets, Markdown tables, doc markers.

Nothing here runs a model or reads MNIST; :mod:`benchmarks.suite` feeds it the stored JSON
results. A *record* is one fit (one method, setting and seed) as a flat dict; a *section* is
the JSON one run of one section stores: ``{"section", "mode", "date", "machine", "args",
"records", ...}``.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from benchmarks.throughput import linear_fit

BEGIN = "<!-- suite:begin -->"
END = "<!-- suite:end -->"
BUDGET_SECONDS = 300.0  # each fit of a labelclean estimator within 5 minutes on 2 CPU cores
LINEAR_EXPONENT = 1.1  # scaling counts as linear when seconds ∝ rows^k with k at most this
# A fit ran on a busy machine when the 1-minute load average, at its start or end, exceeded its own
# thread count by more than this: other work shared the cores and its seconds are inflated.
BUSY_MARGIN = 1.0

CT = "CoTeachingFilter"
PLAIN = "plain training (same nets)"
CLEANLAB = "cleanlab CleanLearning + skorch MLP"
CT_MLP = "CoTeachingFilter (MLP)"
ST = "SelfTrainer"
ST_LOGREG = "SelfTrainingClassifier(LogisticRegression)"
ST_MLP = "SelfTrainingClassifier(skorch MLP)"
PU = "PUClassifier"
ELKANOTO = "pulearn ElkanotoPuClassifier"
BAGGING = "pulearn BaggingPuClassifier"
SPEED_PAIR = "CoTeachingFilter (MLP) vs cleanlab"

SECTIONS = ("noisy", "speed", "semi", "pu")
SECTION_TITLES = {
    "noisy": "1. Noisy labels",
    "speed": "2. Speed at equal backbone",
    "semi": "3. Semi-supervised and relabel",
    "pu": "4. PU learning",
}
SETTING_NAMES = {
    "sym20": "symmetric 20 %",
    "sym50": "symmetric 50 %",
    "sym80": "symmetric 80 %",
    "pair45": "pair 45 %",
    "labels1000": "1,000 labels",
    "labels100": "100 labels",
    "relabel80": "relabel, symmetric 80 %",
    "even_odd": "even vs odd, 1,000 positives",
}


@dataclass(frozen=True)
class Target:
    """One line of the suite's target table: ``metric`` of ``method`` at ``setting`` must satisfy ``op threshold``."""

    section: str
    setting: str
    method: str
    metric: str
    op: str
    threshold: float
    published: str
    label: str
    percent: bool = False

    def met(self, value: float) -> bool:
        """Whether ``value`` meets the target (NaN never does)."""
        if value is None or math.isnan(value):
            return False
        return {
            ">=": value >= self.threshold,
            "<=": value <= self.threshold,
            ">": value > self.threshold,
            "<": value < self.threshold,
        }[self.op]

    def text(self) -> str:
        """The target as shown: ``≥ 99.0 %``."""
        sign = {">=": "≥", "<=": "≤", ">": ">", "<": "<"}[self.op]
        return f"{sign} {100 * self.threshold:.1f} %" if self.percent else f"{sign} {self.threshold:g}"


TARGETS: tuple[Target, ...] = (
    Target("noisy", "sym20", CT, "accuracy", ">=", 0.990, "98.06 (JoCoR)", "symmetric 20 %: test accuracy", True),
    Target("noisy", "sym50", CT, "accuracy", ">=", 0.988, "96.64 (JoCoR)", "symmetric 50 %: test accuracy", True),
    Target(
        "noisy",
        "sym80",
        CT,
        "accuracy",
        ">=",
        0.975,
        "84.89 (JoCoR); 95 (Hinton, teacher–student)",
        "symmetric 80 %: test accuracy",
        True,
    ),
    Target(
        "semi",
        "relabel80",
        ST,
        "accuracy",
        ">=",
        0.975,
        "84.89 (JoCoR); 95 (Hinton, teacher–student)",
        "symmetric 80 %: test accuracy, SelfTrainer(strategy='relabel')",
        True,
    ),
    Target("noisy", "pair45", CT, "accuracy", ">=", 0.970, "87.63 (Co-teaching)", "pair 45 %: test accuracy", True),
    Target(
        "noisy",
        "sym50",
        CT,
        "f1",
        ">=",
        0.99,
        "0.968 (cleanlab + MLP, measured by this suite)",
        "F1 of flagged rows, sym-50",
    ),
    Target(
        "pu",
        "even_odd",
        PU,
        "accuracy",
        ">=",
        0.975,
        "≈ 95–97 (nnPU, LBE, other protocols)",
        "PU even/odd, 1,000 positives: test accuracy",
        True,
    ),
    Target("pu", "even_odd", PU, "prior_error", "<=", 0.02, "—", "PU even/odd: |prior estimate − true prior|"),
    Target(
        "semi", "labels1000", ST, "accuracy", ">=", 0.985, "88.1 (sklearn SelfTraining + LogReg)", "1,000 labels", True
    ),
    Target("semi", "labels100", ST, "accuracy", ">=", 0.95, "81.5 (same)", "100 labels", True),
    Target("speed", "sym50", SPEED_PAIR, "time_ratio", "<=", 0.5, "—", "seconds, CoTeachingFilter / cleanlab (MLP)"),
    Target("speed", "sym50", SPEED_PAIR, "accuracy_gain", ">", 0.0, "—", "accuracy gain over cleanlab (points)"),
    Target("speed", "sym50", SPEED_PAIR, "f1_gain", ">", 0.0, "—", "F1 gain over cleanlab"),
    Target(
        "speed", "sym50", CT_MLP, "utilisation", ">=", 0.5, "—", "training loop / measured matmul peak (FLOP/s)", True
    ),
    Target("speed", "scaling", CT_MLP, "exponent", "<=", LINEAR_EXPONENT, "—", "growth exponent k, seconds ∝ rows^k"),
)


# ---------------------------------------------------------------------------
# Medians, spreads and formatting
# ---------------------------------------------------------------------------


def finite(values: Iterable) -> list[float]:
    """The values that are real numbers (None, NaN and non-numbers dropped)."""
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if not math.isnan(v):
            out.append(float(v))
    return out


def median_spread(values: Iterable) -> tuple[float, float, float]:
    """``(median, min, max)`` of the finite values; NaNs when there are none."""
    vals = finite(values)
    if not vals:
        return (math.nan, math.nan, math.nan)
    return (float(statistics.median(vals)), min(vals), max(vals))


def fmt(values: Iterable, *, scale: float = 1.0, digits: int = 2, thousands: bool = False) -> str:
    """One figure over seeds: ``98.70`` for one value, ``98.70 (98.52–98.81)`` as median (min–max) for several."""
    vals = [scale * v for v in finite(values)]
    if not vals:
        return "—"
    med, lo, hi = median_spread(vals)
    spec = f",.{digits}f" if thousands else f".{digits}f"
    if len(vals) == 1 or f"{lo:{spec}}" == f"{hi:{spec}}":
        return f"{med:{spec}}"
    return f"{med:{spec}} ({lo:{spec}}–{hi:{spec}})"


def mark(ok: bool | None) -> str:
    """✓ / ✗ (empty for None: no target)."""
    return "" if ok is None else ("✓" if ok else "✗")


def render_table(headers: Sequence[str], rows: Iterable[Sequence[str]], align: str | None = None) -> str:
    """A Markdown table; ``align`` is one letter per column (``l`` or ``r``), default first two left."""
    align = align or "ll" + "r" * (len(headers) - 2)
    sep = ["---:" if a == "r" else "---" for a in align]
    head = [str(h).replace("|", "\\|") for h in headers]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(sep) + " |"]
    for row in rows:
        cells = [str(c).replace("|", "\\|") for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Grouping records and the measurements the targets read
# ---------------------------------------------------------------------------


def group(records: Iterable[Mapping]) -> dict[tuple[str, str], list[Mapping]]:
    """Records grouped by ``(setting, method)``, in order of first appearance (errors kept)."""
    out: dict[tuple[str, str], list[Mapping]] = {}
    for r in records:
        out.setdefault((r["setting"], r["method"]), []).append(r)
    return out


def column(records: Sequence[Mapping], key: str) -> list:
    """``key`` of each record that ran without error."""
    return [r.get(key) for r in records if not r.get("error")]


def speed_metrics(records: Sequence[Mapping], matmul_gflops: float | None) -> dict[tuple[str, str, str], list[float]]:
    """Per-seed derived figures of the speed section: time ratio, gains, utilisation, scaling exponent."""
    out: dict[tuple[str, str, str], list[float]] = {}
    ok = [r for r in records if not r.get("error")]
    by_seed: dict[int, dict[str, Mapping]] = {}
    for r in ok:
        if r["setting"] == "sym50":
            by_seed.setdefault(r["seed"], {})[r["method"]] = r
    for pair in by_seed.values():
        ct, cl = pair.get(CT_MLP), pair.get(CLEANLAB)
        if ct and cl:
            out.setdefault(("sym50", SPEED_PAIR, "time_ratio"), []).append(ct["seconds"] / cl["seconds"])
            out.setdefault(("sym50", SPEED_PAIR, "accuracy_gain"), []).append(100 * (ct["accuracy"] - cl["accuracy"]))
            out.setdefault(("sym50", SPEED_PAIR, "f1_gain"), []).append(ct["f1"] - cl["f1"])
        if ct and matmul_gflops and ct.get("train_seconds"):
            achieved = ct["train_flops"] / ct["train_seconds"] / 1e9
            out.setdefault(("sym50", CT_MLP, "achieved_gflops"), []).append(achieved)
            out.setdefault(("sym50", CT_MLP, "utilisation"), []).append(achieved / matmul_gflops)
            out.setdefault(("sym50", CT_MLP, "utilisation_fit"), []).append(
                ct["train_flops"] / ct["seconds"] / 1e9 / matmul_gflops
            )
    for seed in sorted({r["seed"] for r in ok if r["setting"] == "scaling"}):
        pts = sorted((r["n_train"], r["seconds"]) for r in ok if r["setting"] == "scaling" and r["seed"] == seed)
        if len(pts) >= 2:
            fit = linear_fit([p[0] for p in pts], [p[1] for p in pts])
            for key in ("exponent", "r2", "seconds_per_1k_rows", "intercept_s"):
                out.setdefault(("scaling", CT_MLP, key), []).append(fit[key])
    return out


def measurements(sections: Mapping[str, Mapping]) -> dict[tuple[str, str, str, str], list[float]]:
    """Every figure per ``(section, setting, method, metric)``, one value per seed, derived figures included."""
    out: dict[tuple[str, str, str, str], list[float]] = {}
    for name, data in sections.items():
        for (setting, method), recs in group(data.get("records", [])).items():
            for key in {k for r in recs for k in r}:
                vals = finite(column(recs, key))
                if vals:
                    out[(name, setting, method, key)] = vals
        if name == "speed":
            peak = (data.get("matmul") or {}).get("gflops")
            for (setting, method, key), vals in speed_metrics(data.get("records", []), peak).items():
                out[(name, setting, method, key)] = vals
    return out


def target_for(section: str, setting: str, method: str, metric: str) -> Target | None:
    """The suite's target for this figure, if it has one."""
    for t in TARGETS:
        if (t.section, t.setting, t.method, t.metric) == (section, setting, method, metric):
            return t
    return None


def target_cell(section: str, setting: str, method: str, metric: str, values: Sequence[float]) -> str:
    """``≥ 99.0 % ✓`` for a figure with a target (judged on the median), else empty."""
    t = target_for(section, setting, method, metric)
    if t is None:
        return ""
    if not finite(values):
        return f"{t.text()} (no result)"
    return f"{t.text()} {mark(t.met(median_spread(values)[0]))}"


def budget_cell(records: Sequence[Mapping]) -> str:
    """✓ when every seed's fit of a labelclean estimator took at most 5 minutes (the slowest seed counts)."""
    if not records or not records[0].get("ours"):
        return "—"
    secs = finite(column(records, "seconds"))
    if not secs:
        return "—"
    return mark(max(secs) <= BUDGET_SECONDS)


# ---------------------------------------------------------------------------
# Section tables
# ---------------------------------------------------------------------------


def _pct(recs: Sequence[Mapping], key: str = "accuracy") -> str:
    return fmt(column(recs, key), scale=100)


def _num(recs: Sequence[Mapping], key: str, digits: int = 3) -> str:
    return fmt(column(recs, key), digits=digits)


def busy(record: Mapping) -> bool:
    """Whether other work shared the cores during this fit (load average above its threads + ``BUSY_MARGIN``)."""
    load = finite(record.get("loadavg_before_after") or [])
    return bool(load) and max(load) > float(record.get("threads") or 1) + BUSY_MARGIN


def _secs(recs: Sequence[Mapping]) -> str:
    text = fmt(column(recs, "seconds"), digits=0, thousands=True)
    return text + " †" if any(busy(r) for r in recs if not r.get("error")) else text


def _mb(recs: Sequence[Mapping]) -> str:
    return fmt(column(recs, "peak_mb"), digits=0, thousands=True)


def _footnotes(records: Sequence[Mapping]) -> str:
    """The busy-machine footnote (when a fit ran on shared cores) and the list of failed fits."""
    out = ""
    if any(busy(r) for r in records if not r.get("error")):
        out += (
            "\n\n† Other work shared the cores during at least one of these fits (1-minute load average above the "
            f"fit's own threads + {BUSY_MARGIN:g}; per fit in the JSON as `loadavg_before_after`): those seconds "
            "are inflated, on two cores up to tens of times, and are not the machine's speed."
        )
    errs = [r for r in records if r.get("error")]
    if errs:
        lines = [f"- {r['setting']} / {r['method']} / seed {r['seed']}: failed — `{r['error']}`" for r in errs]
        out += "\n\nFits that failed (shown as — above):\n\n" + "\n".join(lines)
    return out


def _method_cell(recs: Sequence[Mapping]) -> str:
    return f"**{recs[0]['method']}**" if recs[0].get("ours") else recs[0]["method"]


def noisy_table(data: Mapping) -> str:
    """Section 1: accuracy and detection per noise setting and method."""
    rows = []
    for (setting, method), recs in group(data["records"]).items():
        acc_t = target_cell("noisy", setting, method, "accuracy", column(recs, "accuracy"))
        f1_t = target_cell("noisy", setting, method, "f1", column(recs, "f1"))
        rows.append(
            [
                SETTING_NAMES.get(setting, setting),
                _method_cell(recs),
                recs[0].get("backbone", ""),
                _pct(recs),
                "; ".join(x for x in (acc_t, f1_t and "F1 " + f1_t) if x),
                _num(recs, "precision"),
                _num(recs, "recall"),
                _num(recs, "f1"),
                _num(recs, "noise_rate"),
                _secs(recs),
                budget_cell(recs),
                _mb(recs),
            ]
        )
    headers = ["noise", "method", "network", "test accuracy %", "target", "precision", "recall", "F1"]
    headers += ["τ used", "seconds", "≤ 5 min", "peak MB"]
    return render_table(headers, rows, "lllrlrrrrrlr") + _footnotes(data["records"])


def speed_tables(data: Mapping) -> str:
    """Section 2: CoTeachingFilter vs cleanlab at equal backbone, matmul utilisation, scaling."""
    m = {k[1:]: v for k, v in measurements({"speed": data}).items()}
    recs_all = [r for r in data["records"] if r["setting"] == "sym50"]
    rows = []
    for recs in group(recs_all).values():
        rows.append(
            [
                _method_cell(recs),
                fmt(column(recs, "epochs_per_model"), digits=0),
                fmt(column(recs, "batch_size"), digits=0),
                fmt(column(recs, "lr"), scale=1e3, digits=1),
                _pct(recs),
                _num(recs, "precision"),
                _num(recs, "recall"),
                _num(recs, "f1"),
                _secs(recs),
                budget_cell(recs),
                _mb(recs),
            ]
        )
    headers = ["method", "epochs per model", "batch", "lr × 1e3", "test accuracy %", "precision", "recall", "F1"]
    headers += ["seconds", "≤ 5 min", "peak MB"]
    parts = [render_table(headers, rows, "lrrrrrrrrlr")]

    def line(metric: str, label: str, method: str = SPEED_PAIR, digits: int = 2, scale: float = 1.0) -> str:
        vals = m.get(("sym50", method, metric), [])
        mark_text = target_cell("speed", "sym50", method, metric, vals)
        return f"{label}: **{fmt(vals, digits=digits, scale=scale)}** {mark_text}"

    parts.append(
        "\n".join(
            [
                "- " + line("time_ratio", "time ratio CoTeachingFilter / cleanlab"),
                "- " + line("accuracy_gain", "accuracy gain over cleanlab (points)"),
                "- " + line("f1_gain", "F1 gain over cleanlab", digits=3),
            ]
        )
    )
    matmul = data.get("matmul") or {}
    ct = [r for r in recs_all if r["method"] == CT_MLP and not r.get("error")]
    util_rows = [
        [
            f"{matmul.get('gflops', math.nan):.1f} (threads: {matmul.get('threads', '?')})" if matmul else "—",
            fmt([r.get("train_flops", math.nan) / 1e12 for r in ct], digits=2),
            fmt(column(ct, "train_seconds"), digits=1),
            fmt(column(ct, "seconds"), digits=1),
            fmt(m.get(("sym50", CT_MLP, "achieved_gflops"), []), digits=1),
            fmt(m.get(("sym50", CT_MLP, "utilisation"), []), scale=100, digits=1),
            target_cell("speed", "sym50", CT_MLP, "utilisation", m.get(("sym50", CT_MLP, "utilisation"), [])),
            fmt(m.get(("sym50", CT_MLP, "utilisation_fit"), []), scale=100, digits=1),
        ]
    ]
    util_headers = [
        "float32 matmul peak, GFLOP/s",
        "training TFLOPs (counted)",
        "training-loop seconds",
        "fit seconds",
        "achieved GFLOP/s",
        "utilisation %",
        "target",
        "utilisation over the whole fit %",
    ]
    parts.append(render_table(util_headers, util_rows, "rrrrrrlr"))
    by_n: dict[int, list[Mapping]] = {}
    for r in data["records"]:
        if r["setting"] == "scaling":
            by_n.setdefault(r["n_train"], []).append(r)
    srows = [
        [
            f"{n:,}",
            _secs(recs),
            fmt([s / n * 1000 for s in finite(column(recs, "seconds"))], digits=2),
            budget_cell(recs),
        ]
        for n, recs in sorted(by_n.items())
    ]
    if srows:
        backbone = next(iter(by_n.values()))[0].get("backbone", "")
        parts.append(
            f"Scaling of `CoTeachingFilter` ({backbone}, defaults, symmetric 50 %) with the number of rows:\n\n"
            + render_table(["rows", "seconds", "seconds per 1,000 rows", "≤ 5 min"], srows, "rrrl")
        )
        exp = m.get(("scaling", CT_MLP, "exponent"), [])
        slope = m.get(("scaling", CT_MLP, "seconds_per_1k_rows"), [])
        parts.append(
            f"Least-squares fit `seconds = a + b · rows`: b = {fmt(slope)} "
            f"s per 1,000 rows, a = {fmt(m.get(('scaling', CT_MLP, 'intercept_s'), []), digits=1)} s, "
            f"R² = {fmt(m.get(('scaling', CT_MLP, 'r2'), []), digits=4)}; growth exponent k of `seconds ∝ rows^k`: "
            f"**{fmt(exp)}** {target_cell('speed', 'scaling', CT_MLP, 'exponent', exp)} (1 = linear; the check is "
            f"k ≤ {LINEAR_EXPONENT})."
        )
    return "\n\n".join(parts) + _footnotes(data["records"])


def semi_table(data: Mapping) -> str:
    """Section 3: semi-supervised accuracy, pseudo-label accuracy, relabel detection."""
    rows = []
    for (setting, method), recs in group(data["records"]).items():
        rows.append(
            [
                SETTING_NAMES.get(setting, setting),
                _method_cell(recs),
                recs[0].get("backbone", ""),
                _pct(recs),
                target_cell("semi", setting, method, "accuracy", column(recs, "accuracy")),
                _pct(recs, "pseudo_accuracy"),
                _num(recs, "precision"),
                _num(recs, "recall"),
                _num(recs, "f1"),
                _secs(recs),
                budget_cell(recs),
                _mb(recs),
            ]
        )
    headers = ["setting", "method", "network", "test accuracy %", "target", "training-row label accuracy %"]
    headers += ["precision", "recall", "F1", "seconds", "≤ 5 min", "peak MB"]
    return render_table(headers, rows, "lllrlrrrrrlr") + _footnotes(data["records"])


def pu_table(data: Mapping) -> str:
    """Section 4: PU accuracy, prior estimate and its error."""
    rows = []
    for (setting, method), recs in group(data["records"]).items():
        rows.append(
            [
                _method_cell(recs),
                recs[0].get("backbone", ""),
                _pct(recs),
                target_cell("pu", setting, method, "accuracy", column(recs, "accuracy")),
                _num(recs, "prior", 4),
                _num(recs, "true_prior", 4),
                _num(recs, "prior_error", 4),
                target_cell("pu", setting, method, "prior_error", column(recs, "prior_error")),
                _secs(recs),
                budget_cell(recs),
                _mb(recs),
            ]
        )
    headers = ["method", "model", "test accuracy %", "target", "prior estimate", "true prior", "|error|", "target"]
    headers += ["seconds", "≤ 5 min", "peak MB"]
    return render_table(headers, rows, "llrlrrrlrlr") + _footnotes(data["records"])


RENDERERS = {"noisy": noisy_table, "speed": speed_tables, "semi": semi_table, "pu": pu_table}


def summary_table(sections: Mapping[str, Mapping]) -> str:
    """The suite's targets next to the measured medians, ✓ / ✗.

    A figure reached by a labelclean estimator whose slowest fit took over 5 minutes is ✗, with the
    seconds beside it (every fit must stay within the budget).

    ``not run`` (no mark) where the section or the setting was not run; ``no result`` (✗) where
    it ran but gave no figure (a failed fit).
    """
    m = measurements(sections)
    rows = []
    for t in TARGETS:
        vals = m.get((t.section, t.setting, t.method, t.metric), [])
        ran = any(r.get("setting") == t.setting for r in sections.get(t.section, {}).get("records", []))
        if not ran:
            measured, ok = "not run", ""
        elif not vals:
            measured, ok = "no result", "✗"
        else:
            measured = fmt(vals, scale=100 if t.percent else 1, digits=2 if t.percent else 3)
            measured += " %" if t.percent else ""
            ok = mark(t.met(median_spread(vals)[0]))
            fits = [
                r
                for r in sections.get(t.section, {}).get("records", [])
                if r.get("setting") == t.setting and r.get("method") == t.method and r.get("ours")
            ]
            if ok == "✓" and budget_cell(fits) == "✗":  # a figure counts only from fits within 5 minutes
                slowest = max(finite(column(fits, "seconds")))
                ok = f"✗ (figure reached, but a fit took {slowest:.0f} s > {BUDGET_SECONDS:.0f} s)"
        rows.append([t.label, t.method, t.published, t.text(), measured, ok])
    headers = ["target", "measured by", "published best we know", "target", "measured", "met"]
    return render_table(headers, rows, "lllrrl")


# ---------------------------------------------------------------------------
# The document
# ---------------------------------------------------------------------------


def machine_lines(sections: Mapping[str, Mapping]) -> str:
    """Machine and library versions, once per distinct machine description, naming the sections measured on it."""
    seen: list[tuple[str, list[str]]] = []
    for name, data in sections.items():
        mach = data.get("machine", {})
        gpu = mach.get("gpu")
        ram = mach.get("ram_gib")
        desc = (
            f"{mach.get('cpu', '?')}, {mach.get('cores', '?')} cores, "
            f"{'?' if ram is None else f'{ram:.0f}'} GiB RAM, torch threads: {mach.get('torch_threads', '?')}, "
            f"{'GPU ' + gpu if gpu else 'no GPU'}; {mach.get('platform', '')}, Python {mach.get('python', '')}. "
            "Versions: "
            + ", ".join(f"{k} {v}" for k, v in mach.get("versions", {}).items())
            + f" (labelclean revision {mach.get('labelclean_revision', '?')})."
        )
        for d, names in seen:
            if d == desc:
                names.append(name)
                break
        else:
            seen.append((desc, [name]))
    return "\n".join(f"- **{', '.join(names)}**: {desc}" for desc, names in seen)


def runs_table(sections: Mapping[str, Mapping]) -> str:
    """When and how each section was measured."""
    rows = []
    for name, data in sections.items():
        args = data.get("args", {})
        load = data.get("loadavg", [math.nan, math.nan])
        rows.append(
            [
                SECTION_TITLES.get(name, name),
                data.get("date", "?"),
                data.get("mode", "?"),
                ",".join(str(s) for s in args.get("seeds", [])),
                f"{args.get('rows', 0):,}",
                f"{data.get('minutes', math.nan):.1f}",
                f"{load[0]:.2f} → {load[-1]:.2f}",
                f"`{data.get('command', '')}`",
            ]
        )
    headers = ["section", "measured", "mode", "seeds", "training rows", "minutes", "load avg (1 min)", "command"]
    return render_table(headers, rows, "llllrrll")


def render_suite(sections: Mapping[str, Mapping], notes: Mapping[str, str] | None = None) -> str:
    """The whole marked region: a quick-run banner if any section is quick, runs, targets, section tables."""
    notes = notes or {}
    ordered = {k: sections[k] for k in SECTIONS if k in sections}
    parts = []
    if any(d.get("mode") == "quick" for d in ordered.values()):
        rows = sorted({d.get("args", {}).get("rows", 0) for d in ordered.values()})
        parts.append(
            "> **QUICK SMOKE RUN — not the published figures.** "
            f"Subsampled to {', '.join(f'{r:,}' for r in rows)} training rows, one seed, some settings only, the "
            "peers' MLPs capped at a few epochs (`python -m benchmarks --quick`). The ✓ / ✗ marks compare these "
            "smoke figures with targets set for the full data and mean nothing here."
        )
    parts.append("### Runs\n\n" + runs_table(ordered) + "\n\n" + machine_lines(ordered))
    parts.append("### Targets\n\n" + summary_table(ordered))
    for name, data in ordered.items():
        body = RENDERERS[name](data)
        note = notes.get(name, "")
        parts.append(f"### {SECTION_TITLES[name]}\n\n" + (note + "\n\n" if note else "") + body)
    return "\n\n".join(parts)


def replace_region(text: str, body: str, begin: str = BEGIN, end: str = END) -> str:
    """``text`` with everything between the ``begin`` and ``end`` markers replaced by ``body``.

    Without the markers, the marked region is inserted after the document's intro — before
    its first ``<a id=...>`` anchor or ``## `` heading — or appended when it has neither.
    Everything outside the markers is kept byte for byte.
    """
    region = f"{begin}\n{body.strip()}\n{end}"
    if begin in text and end in text:
        start, stop = text.index(begin), text.index(end, text.index(begin)) + len(end)
        return text[:start] + region + text[stop:]
    if begin in text or end in text:
        raise ValueError(f"the document has only one of the markers {begin!r} and {end!r}; fix it by hand.")
    match = re.search(r"^(<a id=|## )", text, flags=re.MULTILINE)
    if match is None:
        return text.rstrip("\n") + "\n\n" + region + "\n"
    return text[: match.start()] + region + "\n\n" + text[match.start() :]


def replace_region_at_end(text: str, body: str, begin: str, end: str, heading: str | None = None) -> str:
    """:func:`replace_region`, the markers (after ``heading``, if given) appended at the end when missing."""
    if begin not in text and end not in text:
        text = text.rstrip("\n") + (f"\n\n{heading}" if heading else "") + f"\n\n{begin}\n{end}\n"
    return replace_region(text, body, begin, end)
