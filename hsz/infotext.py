"""The human-readable page ``hsz info`` prints (the JSON form is the same dict, unformatted)."""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from rich.console import Group
from rich.table import Table
from rich.text import Text

from hsz.codec.container import damage_summary


def _fmt_bytes(n: int) -> str:
    return f"{n:,d} B"


def _integrity_text(integrity: dict[str, Any] | None) -> Text:
    # Text, not markup: section types are file bytes and could contain "[".
    if integrity is None:
        return Text("not checked")
    if integrity.get("intact"):
        checked = integrity.get("checked", [])
        return Text(f"intact (CRC-32 of all {len(checked)} sections verified)")
    return Text("DAMAGED: ", style="bold red") + Text(damage_summary(integrity))


def _numbers(value: Any, count: int | None = None) -> list[float] | None:
    """``value`` as a list of numbers (of ``count`` of them), or None when it is not one.

    The page formats only what is well formed; what is not is named in the warnings.
    """
    if not isinstance(value, list) or (count is not None and len(value) != count):
        return None
    if not value or not all(isinstance(v, int | float) and not isinstance(v, bool)
                            for v in value):
        return None
    return [float(v) for v in value]


def _number(value: Any, spec: str) -> str:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return format(value, spec) if ok else "?"


def _wavelength_text(meta: dict[str, Any], bands: Any) -> str:
    wl = meta.get("wavelengths")
    if not wl:
        return "none (decodable at its own bands only)"
    values = _numbers(wl)
    if values is None:
        return "malformed (see warnings)"
    unit = meta.get("wavelength_units") or "nm"
    # Said as a count of bands only when it is one; otherwise the mismatch shows here too.
    count = f"{len(values)} bands" if len(values) == bands else \
        f"{len(values)} values for {bands} bands"
    return f"{count}, {min(values):g}-{max(values):g} nm (source unit: {unit})"


def _georeference_text(meta: dict[str, Any]) -> str:
    crs, transform = meta.get("crs"), meta.get("transform")
    if not crs and not transform:
        return "none"
    crs = crs if isinstance(crs, str) else ""
    name = crs.split('"')[1] if crs.count('"') >= 2 else (crs[:40] or "no CRS")
    t = _numbers(transform, 6)
    return name + (f", pixel {abs(t[0]):g} x {abs(t[4]):g}" if t else "")


def render_info(d: dict[str, Any]) -> Group:
    meta = d.get("meta") or {}
    bands, rows, cols = meta.get("shape", [0, 0, 0])
    top = Table(show_header=False, box=None, pad_edge=False)

    def row(label: str, value: str | Text) -> None:
        # Text, not markup: values come from the file and could contain "[".
        top.add_row(label, value if isinstance(value, Text) else Text(value))

    row("file", str(d.get("file", "")))
    row("format", f"hsz {d.get('format', '?')}, {d.get('header_bytes', 0)} B header")
    row("integrity", _integrity_text(d.get("integrity")))
    row("cube", f"{bands} bands x {rows} rows x {cols} cols, {meta.get('dtype')}")
    vr = _numbers(meta.get("value_range"), 2)
    if vr:
        row("value range", f"{vr[0]:g} .. {vr[1]:g}")
    row("wavelengths", _wavelength_text(meta, bands))
    row("georeference", _georeference_text(meta))
    if meta.get("nodata") is not None:
        row("nodata", str(meta["nodata"]))
    model = d.get("model") if isinstance(d.get("model"), dict) else {}
    arch = model.get("architecture")
    row("model", f"{model.get('id', '?')} ({arch})" if arch else str(model.get("id", "?")))
    q = meta.get("quality") if isinstance(meta.get("quality"), dict) else {}
    if q:
        row(
            "quality at encode",
            f"PSNR {_number(q.get('psnr_band_mean'), '.2f')} dB (band mean), "
            f"{_number(q.get('psnr_global'), '.2f')} dB (global), "
            f"SAM {_number(q.get('sam_deg'), '.3f')} deg",
        )
    row("size", _fmt_bytes(int(d.get("bytes", 0))))
    row("rate", f"{d.get('bpppb', 0):.4f} bpppb, ratio {d.get('compression_ratio', 0):.1f}x")

    sections = Table(title="sections", box=None, pad_edge=False)
    for col in ("type", "flags", "offset", "bytes"):
        sections.add_column(col, justify="right" if col in ("offset", "bytes") else "left")
    tile_sections = [s for s in d.get("sections", []) if s.get("type") == "TILE"]
    for s in d.get("sections", []):
        if s.get("type") == "TILE" and s is not tile_sections[0]:
            continue  # a tiled file's tiles are one row: there can be a thousand
        kind, length = str(s.get("type")), int(s.get("length", 0))
        if kind == "TILE":
            kind = f"TILE x{len(tile_sections)}"
            length = sum(int(t.get("length", 0)) for t in tile_sections)
        sections.add_row(kind, str(s.get("flags")), str(s.get("offset")), _fmt_bytes(length))
    # Laid out to fit 80 columns with names like "decoder.blocks.1.conv.weight": names
    # are identifiers people search for, so they never wrap; narrower columns give way
    # first.  Text, not markup: names are file bytes and could contain "[".
    listed = d.get("tensors", [])
    tensors = Table(title="tensors", box=None, pad_edge=False)
    longest = max((cell_len(str(t.get("name"))) for t in listed), default=4)
    tensors.add_column("name", no_wrap=True, min_width=longest, vertical="bottom")
    for col in ("shape", "bits", "scales", "coding", "bytes", "bits/\nvalue"):
        # Bottom-aligned headers keep the two-line one from pushing the others up.  On a
        # terminal too narrow for the row these end in "…" (the JSON has every figure):
        # folding them would scatter each row over several lines.
        tensors.add_column(col, justify="left" if col == "coding" else "right",
                           vertical="bottom")
    total_values = 0
    for t in listed:
        shape = [int(v) for v in t.get("shape", [])]
        count = 1
        for dim in shape:
            count *= dim
        total_values += count
        per = 8.0 * int(t.get("bytes", 0)) / count if count else 0.0
        # One (offset, scale) pair per tensor, or one per index of dimension 0.
        pairs = shape[0] if t.get("axis") == 0 and shape else 1
        tensors.add_row(
            Text(str(t.get("name"))), "x".join(str(v) for v in shape) or "scalar",
            str(t.get("bits")), str(pairs), Text(str(t.get("method"))),
            f"{int(t.get('bytes', 0)):,d}", f"{per:.2f}",
        )
    grid_values = sum(int(g["shape"][0]) * int(g["shape"][1]) * int(g["shape"][2])
                      for g in d.get("grids") or [] if len(g.get("shape", [])) == 3)
    stored = f"{total_values:,d} stored values in {len(listed)} tensors"
    if grid_values:
        stored += f", {grid_values:,d} in {len(d['grids'])} grids"
    tiles = d.get("tiles") or []
    if tiles:  # format 1.3: the model lives in each tile
        sizes = [int(t.get("length", 0)) for t in tiles]
        first = tiles[0].get("window", [0, 0, 0, 0])
        margin = (d.get("meta", {}).get("tiles") or {}).get("margin", 0)
        row("tiles", f"{len(tiles)} of {first[2]}x{first[3]} pixels"
                     + (f", each coded over a margin of {margin} pixels" if margin else "")
                     + f", {_fmt_bytes(min(sizes))} to {_fmt_bytes(max(sizes))} each")
    else:
        row("parameters", stored)
    # Right under the header they qualify, before the section and tensor lists.
    warnings = [Text("warning: ", style="bold yellow") + Text(w) for w in d.get("warnings", [])]
    parts: list[Any] = [top, *warnings, "", sections]
    if not tiles:
        parts += ["", tensors]
    grids = d.get("grids") or []
    if grids:  # format 1.1: integer grids coded under the file's context networks
        table = Table(title="grids (context-coded)", box=None, pad_edge=False)
        longest_grid = max(cell_len(str(g.get("name"))) for g in grids)
        table.add_column("name", no_wrap=True, min_width=longest_grid, vertical="bottom")
        for col in ("shape", "bits", "guide", "context", "bytes", "bits/\nvalue"):
            table.add_column(col, justify="left" if col in ("guide", "context") else "right",
                             vertical="bottom")
        for g in grids:
            shape = [int(v) for v in g.get("shape", [])]
            count = max(1, shape[0] * shape[1] * shape[2]) if len(shape) == 3 else 1
            layers = "-".join(str(w[1]) for w in g.get("context_layers", [])[:1]) + "".join(
                f"-{w[0]}" for w in g.get("context_layers", []))
            table.add_row(Text(str(g.get("name"))), "x".join(str(v) for v in shape),
                          str(g.get("bits")), Text(str(g.get("guide") or "-")), layers,
                          f"{int(g.get('bytes', 0)):,d}",
                          f"{8.0 * int(g.get('bytes', 0)) / count:.2f}")
        parts += ["", table]
    return Group(*parts)
