#!/usr/bin/python3
"""Draws the plots of one `disco experiment` run.

Usage: plot.py SPEC.json   (written by disco experiment next to the CSV)

SPEC: {"title": ..., "csv": path, "out": dir, "plots": [plot, ...]}; a plot:
  file      the PNG's name in `out`
  x, y      CSV columns; y may be a list of columns, one series each
  series    a column or a list of columns: one line (or bar group) per value
  where     {column: value}: only those rows
  normalize {column: c, value: v, match: [cols]}: y as a percentage of the row with
            c == v and the same values in `match` (the paper's normalized bars)
  kind      line (default) or bar
  title, xlabel, ylabel, logx
Rows with an empty y are left out; several rows at one point are averaged.
"""
import csv
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def as_list(v):
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def draw(rows, plot, out_dir, title):
    x, ys = plot["x"], as_list(plot["y"])
    y = " / ".join(ys)
    series_cols = as_list(plot.get("series"))
    where = plot.get("where") or {}
    rows = [r for r in rows if all(str(r.get(k)) == str(v) for k, v in where.items())]
    norm = plot.get("normalize")
    values = []
    for r, col in ((r, col) for r in rows for col in ys):
        v = number(r.get(col))
        if v is None:
            continue
        if norm:
            match = as_list(norm.get("match"))
            base = [number(b.get(col)) for b in rows
                    if str(b.get(norm["column"])) == str(norm["value"]) and all(b.get(m) == r.get(m) for m in match)]
            base = [b for b in base if b]
            if not base:
                continue
            v = 100.0 * v / (sum(base) / len(base))
        label = ", ".join(f"{c}={r.get(c)}" if c in ("nodes", "vcpus", "vms", "policy", "cache_mib") else str(r.get(c))
                          for c in series_cols)
        if len(ys) > 1 or not label:
            label = f"{label}: {col}" if label else col
        values.append((label, r.get(x), v))
    if not values:
        raise SystemExit(f"plot {plot['file']}: no rows with a value in '{y}'")
    labels = list(dict.fromkeys(v[0] for v in values))
    xs = list(dict.fromkeys(v[1] for v in values))
    numeric_x = all(number(v) is not None for v in xs)
    if numeric_x:
        xs.sort(key=number)
    kind = plot.get("kind", "line")
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    width = 0.8 / max(1, len(labels))
    for i, label in enumerate(labels):
        points = []
        for xv in xs:
            ys = [v for (l, xx, v) in values if l == label and xx == xv]
            if ys:
                points.append((xv, sum(ys) / len(ys)))
        if kind == "bar":
            pos = [xs.index(p[0]) + (i - (len(labels) - 1) / 2) * width for p in points]
            bars = ax.bar(pos, [p[1] for p in points], width=width, label=label)
            ax.bar_label(bars, fmt="%.0f" if norm else "%.3g", fontsize=7)
        elif numeric_x:
            ax.plot([number(p[0]) for p in points], [p[1] for p in points], marker="o", label=label)
        else:
            ax.plot([xs.index(p[0]) for p in points], [p[1] for p in points], marker="o", label=label)
    if kind == "bar" or not numeric_x:
        ax.set_xticks(range(len(xs)))
        ax.set_xticklabels(xs)
    elif plot.get("logx"):
        ax.set_xscale("log", base=2)
        ax.set_xticks([number(v) for v in xs])
        ax.set_xticklabels(xs)
    else:
        ax.set_xticks([number(v) for v in xs])
    ax.set_xlabel(plot.get("xlabel", x))
    ax.set_ylabel(plot.get("ylabel", y + (" (% of baseline)" if norm else "")))
    ax.set_title(plot.get("title", title), fontsize=10)
    if norm:
        ax.axhline(100, color="grey", linewidth=0.8, linestyle="--")
    if y == "local_share":
        ax.set_ylim(0, 1.05)
    else:
        ax.set_ylim(bottom=0)
    if len(labels) > 1 or series_cols:
        ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path = os.path.join(out_dir, plot["file"])
    fig.savefig(path)
    plt.close(fig)
    print(f"plot: {path}")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    with open(spec["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    for plot in spec["plots"]:
        draw(rows, plot, spec["out"], spec.get("title", ""))


if __name__ == "__main__":
    main()
