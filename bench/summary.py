#!/usr/bin/env python3
"""Draw the pictures of docs/benchmarks.md's summary from the tables its sections record.

    bench/summary.py [--doc docs/benchmarks.md] [--out docs/img]

Each picture is a horizontal bar chart (SVG, no plotting library needed) of one benchmark's
latest table: the start of 32 ranks at once (ranks.svg), packing a tree (pack.svg) and pulling
an image (pull.svg), sifr's bars against the peers' in the same run. The tables are found by
their header row, so a rerun of a benchmark whose new table replaces the old one is drawn on
the next run of this script. It fails, naming the table, when one is missing.
"""
import argparse
import html
import pathlib
import re
import sys


def tables(text):
    """Every Markdown table of `text` as (header cells, rows of cells)."""
    out, cur = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cur.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif cur:
            if len(cur) > 2:
                out.append((cur[0], cur[2:]))
            cur = []
    return out


def find(text, *header_words):
    """The first table whose header contains every word."""
    for head, rows in tables(text):
        joined = " ".join(head)
        if all(w in joined for w in header_words):
            return head, rows
    sys.exit(f"summary.py: no table with {header_words} in the benchmarks")


def number(cell):
    """The first number of a cell (`**80.0 (0.46x)**` -> 80.0)."""
    m = re.search(r"[0-9]+(?:\.[0-9]+)?", cell.replace("**", ""))
    return float(m.group()) if m else None


def plain(cell):
    return re.sub(r"[`*]", "", cell)


def bars(title, unit, items, path):
    """A horizontal bar chart: items are (label, value, is_sifr)."""
    items = [(l, v, s) for l, v, s in items if v is not None]
    width, left, bar_h, gap = 760, 330, 18, 8
    height = 40 + len(items) * (bar_h + gap) + 20
    top = max(v for _, v, _ in items)
    scale = (width - left - 90) / top
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<text x="10" y="20" font-size="14" font-weight="bold">{html.escape(title)}</text>',
    ]
    y = 40
    for label, value, is_sifr in items:
        colour = "#2b6cb0" if is_sifr else "#a0aec0"
        w = max(1.0, value * scale)
        parts.append(
            f'<text x="{left - 8}" y="{y + 13}" text-anchor="end">{html.escape(label)}</text>'
        )
        parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}"/>')
        parts.append(f'<text x="{left + w + 6:.1f}" y="{y + 13}">{value:g} {unit}</text>')
        y += bar_h + gap
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--doc", default="docs/benchmarks.md")
    ap.add_argument("--out", default="docs/img")
    a = ap.parse_args()
    text = pathlib.Path(a.doc).read_text()
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    head, rows = find(text, "root `/bin/true`", "user `/bin/true`")
    bars(
        "32 ranks started at once, root, /bin/true (ms, lower is better)",
        "ms",
        [(plain(r[0]), number(r[1]), "sifr" in r[0]) for r in rows],
        out / "ranks.svg",
    )

    head, rows = find(text, "rootfs", "tool", "wall s", "speed vs mksquashfs")
    bars(
        "Packing a Debian tree, zstd -3 (wall s, lower is better)",
        "s",
        [(f"{plain(r[0])}: {plain(r[2])}", number(r[3]), "sifr" in r[2]) for r in rows],
        out / "pack.svg",
    )

    head, rows = find(text, "sifr pull, gzip", "skopeo copy alone")
    items = []
    for r in rows:
        image = plain(r[0])
        for i, name in enumerate(head[1:5], start=1):
            items.append((f"{image}: {plain(name).replace(' (s)', '')}", number(r[i]), "sifr" in name))
    bars("Pulling a registry image into a SIF (s, lower is better)", "s", items, out / "pull.svg")
    print(f"wrote {out}/ranks.svg, pack.svg, pull.svg")


if __name__ == "__main__":
    main()
