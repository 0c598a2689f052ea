"""The human-readable page ``hsz info`` prints (the JSON form is the same dict, unformatted)."""

from __future__ import annotations

from typing import Any

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
    tensors = Table(title="tensors", box=None, pad_edge=False)
    for col in ("name", "shape", "bits", "layout", "coding", "bytes", "bits/value"):
        tensors.add_column(
            col, justify="left" if col in ("name", "coding", "layout") else "right",
            overflow="fold",
        )
    total_values = 0
    for t in d.get("tensors", []):
        count = 1
        for dim in t.get("shape", []):
            count *= int(dim)
        total_values += count
        per = 8.0 * int(t.get("bytes", 0)) / count if count else 0.0
        tensors.add_row(
            str(t.get("name")), "x".join(str(v) for v in t.get("shape", [])), str(t.get("bits")),
            "per channel" if t.get("axis") == 0 else "per tensor", str(t.get("method")),
            _fmt_bytes(int(t.get("bytes", 0))), f"{per:.2f}",
        )
    top.add_row("parameters", f"{total_values:,d} stored values in {len(d.get('tensors', []))} "
                              "tensors")
    return Group(top, "", sections, "", tensors)
