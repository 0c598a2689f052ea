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


def render_info(d: dict[str, Any]) -> Group:
    meta = d.get("meta") or {}
    bands, rows, cols = meta.get("shape", [0, 0, 0])
    top = Table(show_header=False, box=None, pad_edge=False)
    top.add_row("file", str(d.get("file", "")))
    top.add_row("format", f"hsz {d.get('format', '?')}, {d.get('header_bytes', 0)} B header")
    top.add_row("integrity", _integrity_text(d.get("integrity")))
    top.add_row("cube", f"{bands} bands x {rows} rows x {cols} cols, {meta.get('dtype')}")
    vr = meta.get("value_range")
    if vr:
        top.add_row("value range", f"{vr[0]:g} .. {vr[1]:g}")
    wl = meta.get("wavelengths")
    if wl:
        unit = meta.get("wavelength_units") or "nm"
        top.add_row("wavelengths", f"{len(wl)} bands, {min(wl):g}-{max(wl):g} nm "
                                   f"(source unit: {unit})")
    else:
        top.add_row("wavelengths", "none (decodable at its own bands only)")
    geo = "none"
    if meta.get("crs") or meta.get("transform"):
        crs = meta.get("crs") or ""
        name = crs.split('"')[1] if crs.count('"') >= 2 else (crs[:40] or "no CRS")
        t = meta.get("transform")
        px = f", pixel {abs(t[0]):g} x {abs(t[4]):g}" if t else ""
        geo = f"{name}{px}"
    top.add_row("georeference", geo)
    if meta.get("nodata") is not None:
        top.add_row("nodata", str(meta["nodata"]))
    model = meta.get("model") or {}
    cfg = model.get("config") or {}
    arch = ", ".join(
        f"{k}={v}" for k, v in cfg.items() if k in ("fc_h", "fc_w", "fc_dim", "dec_strides",
                                                   "embed_channels")
    )
    top.add_row("model", f"{model.get('id', '?')} ({arch})" if arch else str(model.get("id")))
    q = meta.get("quality") or {}
    if q:
        top.add_row(
            "quality at encode",
            f"PSNR {q.get('psnr_band_mean', float('nan')):.2f} dB (band mean), "
            f"{q.get('psnr_global', float('nan')):.2f} dB (global), "
            f"SAM {q.get('sam_deg', float('nan')):.3f} deg",
        )
    top.add_row("size", _fmt_bytes(int(d.get("bytes", 0))))
    rate = f"{d.get('bpppb', 0):.4f} bpppb, ratio {d.get('compression_ratio', 0):.1f}x"
    top.add_row("rate", rate)

    sections = Table(title="sections", box=None, pad_edge=False)
    for col in ("type", "flags", "offset", "bytes"):
        sections.add_column(col, justify="right" if col in ("offset", "bytes") else "left")
    for s in d.get("sections", []):
        sections.add_row(str(s.get("type")), str(s.get("flags")), str(s.get("offset")),
                         _fmt_bytes(int(s.get("length", 0))))
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
    top.add_row("parameters", f"{total_values:,d} stored values in {len(d.get('tensors', []))} "
                              "tensors")
    return Group(top, "", sections, "", tensors)
