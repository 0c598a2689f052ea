"""The ``hsz`` command line: encode, decode, info (and the commands that build on them).

Options shared between commands are defined once below and applied as decorators, so a
flag means the same thing everywhere.  Every failure the user can act on becomes one line
on stderr and a non-zero exit status: 1 when an operation failed, 2 when the request was
malformed.  ``--verbose`` adds the traceback for bug reports.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from hsz import __version__
from hsz.errors import HszError, UsageError

F = TypeVar("F", bound=Callable[..., Any])

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out_console = Console(highlight=False, soft_wrap=True)


@dataclass
class CliState:
    """Verbosity chosen at the group or the command level (either one turns it on).

    It lives on the click context (``ctx.obj``, which a command's context shares with the
    group's), not in a module global: every invocation starts quiet-free and verbose-free,
    so calls of ``cli`` in one process (tests, scripts) never inherit each other's -q/-v.
    """

    quiet: bool = False
    verbose: bool = False


def _state(ctx: click.Context | None = None) -> CliState:
    """This invocation's state; defaults when called outside any invocation."""
    ctx = ctx or click.get_current_context(silent=True)
    return CliState() if ctx is None else ctx.ensure_object(CliState)


def _set_quiet(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    state = _state(ctx)  # created even when the flag is off: the group's becomes the shared one
    if value:
        state.quiet = True
    return value


def _set_verbose(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    state = _state(ctx)
    if value:
        state.verbose = True
    return value


def verbosity(f: F) -> F:
    f = click.option(
        "-v", "--verbose", is_flag=True, expose_value=False, callback=_set_verbose,
        help="Say more, and show a traceback when something fails.",
    )(f)
    f = click.option(
        "-q", "--quiet", is_flag=True, expose_value=False, callback=_set_quiet,
        help="No progress bar or summary; errors only.",
    )(f)
    return f


def output_option(help_text: str, required: bool = True) -> Callable[[F], F]:
    return click.option(
        "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=required,
        help=help_text,
    )


overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Replace the output if it exists (never done silently)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout.")
def _settle_device(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Check --device before any work and turn ``auto`` into the device it picks.

    CUDA asked for on a machine without it is a bad request (exit 2), said in one line
    before minutes of reading and fitting, not an internal error from deep inside torch.
    Torch is imported only when a device other than the CPU is named.
    """
    if value is None or value == "cpu":
        return value
    import torch

    available = torch.cuda.is_available()
    if value == "cuda" and not available:
        raise UsageError("--device cuda: PyTorch finds no CUDA GPU on this machine; "
                         "use --device cpu (or auto)")
    if value == "auto":
        return "cuda" if available else "cpu"
    return value


device_option = click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
    callback=_settle_device,
    help="Where to run the network: auto picks CUDA when available.",
)
format_help = "Override the format chosen from the extension: envi, gtiff, mat, npy."


def reader_options(f: F) -> F:
    """How to read an input cube: shared by every command that reads one."""
    for opt in reversed([
        click.option("--format", "fmt", metavar="NAME", default=None, help=format_help),
        click.option("--var", default=None, metavar="NAME",
                     help="MATLAB variable holding the cube (default: the largest 3-D array)."),
        click.option("--layout", type=click.Choice(["hwb", "bhw"]), default=None,
                     help="Axis order of .mat/.npy arrays: rows,cols,bands (hwb, default) or "
                          "bands,rows,cols (bhw)."),
        click.option("--wavelengths", "in_wavelengths", metavar="SPEC", default=None,
                     help="Wavelengths of the input's bands when the file has none: "
                          "400,410,..., 400:2500:10, or a text/CSV file; nm unless 'um' "
                          "follows."),
        click.option("--nodata", type=float, default=None,
                     help="Sample value that marks pixels without data (overrides the file)."),
    ]):
        f = opt(f)
    return f


class HszGroup(click.Group):
    """Turns the errors users can act on into one line and an exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except UsageError as exc:
            _fail(ctx, _message(exc), 2)
        except HszError as exc:
            _fail(ctx, _message(exc), 1)
        except KeyboardInterrupt:
            _fail(ctx, "interrupted; no output was written", 130)
        except MemoryError:
            _fail(ctx, "out of memory; try a smaller cube or a machine with more memory", 1)
        except OSError as exc:
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            _fail(ctx, f"{where}{exc.strerror or exc}", 1)
        except Exception as exc:  # noqa: BLE001 - the last line of defence for users
            _fail(ctx, f"internal error: {type(exc).__name__}: {exc} "
                       "(rerun with --verbose and report it)", 1)


#: Library parameter names whose command-line spelling is not ``--`` plus the name.
_FLAGS = {"size": "--size", "rgb": "--rgb"}


def _message(exc: HszError) -> str:
    """The library's message, pointing at the flag behind the parameter it names."""
    option = getattr(exc, "option", None)
    if not option:
        return str(exc)
    flag = _FLAGS.get(option, "--" + option.replace("_", "-"))
    return f"{exc} ({flag})"


def _fail(ctx: click.Context, message: str, code: int) -> None:
    if _state(ctx).verbose:
        traceback.print_exc(file=sys.stderr)
    click.echo(f"hsz: error: {message}", err=True)
    ctx.exit(code)


def _note(message: str) -> None:
    if not _state().quiet:
        err_console.print(f"[dim]{message}[/dim]")


@contextmanager
def _progress(label: str, unit: str) -> Iterator[Callable[[dict[str, Any]], None]]:
    """A rich progress bar on stderr fed by the library's progress dicts (silent with -q)."""
    if _state().quiet or not sys.stderr:
        yield lambda _info: None
        return
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} {task.fields[unit]}"),
        TextColumn("{task.fields[extra]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    # The bar appears with the first report, so a request refused up front leaves no
    # empty bar above its error message.
    bar = Progress(*columns, console=err_console, transient=False)
    task = bar.add_task(label, total=None, extra="", unit=unit)
    started = False

    def update(info: dict[str, Any]) -> None:
        nonlocal started
        if not started:
            bar.start()
            started = True
        total = info.get("epochs") or info.get("bands") or info.get("tiles")
        done = info.get("epoch") or info.get("band") or info.get("tile")
        if "tile" in info and "unit" not in info:
            info = {**info, "unit": "tiles"}
        extra = []
        if "loss" in info:
            extra.append(f"loss {info['loss']:.4f}")
        if "psnr" in info and info["psnr"] is not None:
            extra.append(f"PSNR {info['psnr']:.2f} dB")
        # A family may name its own unit (the latent family counts iterations, not epochs).
        bar.update(task, total=total, completed=done, extra="  ".join(extra),
                   unit=info.get("unit", unit))

    try:
        yield update
    finally:
        if started:
            bar.stop()


@click.group(cls=HszGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="hsz")
@verbosity
def cli() -> None:
    """hsz compresses hyperspectral cubes with a neural representation of the spectrum.

    \b
    Encode a cube at a rate you choose, decode it at its own bands or at any
    wavelength in the sensor's range, and inspect a file without decoding it:

    \b
      hsz encode scene.tif -o scene.hsz --bpppb 0.1
      hsz decode scene.hsz -o scene_5nm.tif --wavelengths 450:950:5
      hsz info scene.hsz

    Reads ENVI, GeoTIFF (and other GDAL rasters), MATLAB .mat (v5 and v7.3) and .npy.
    """


# -- encode -------------------------------------------------------------------------------------


def _model_help() -> str:
    from hsz.model import DEFAULT_MODEL, get_family, model_ids

    listed = ". ".join(f"{i}: {get_family(i).summary}" for i in model_ids())
    return f"Model family to fit (default {DEFAULT_MODEL}). {listed}."


def _preset_help() -> str:
    """Each family's presets as the family states them (torch is not imported)."""
    from hsz.model import get_family, model_ids
    from hsz.model.hiner_schedule import PRESETS

    parts = []
    for i in model_ids():
        family = get_family(i)
        said = "; ".join(f"{n} = {d}" for n, d in family.presets.items())
        note = f"; {family.preset_note}" if family.preset_note else ""
        parts.append(f"{i}: {said} (default {family.default_preset}{note})")
    batch = PRESETS[get_family("hiner").default_preset].batch_cpu
    return ("Trade encoding time for quality. " + ". ".join(parts)
            + f" (for hiner, a step fits {batch} bands on CPU).")



def _positive(_ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise click.BadParameter("must be at least 1", param=param)
    return value


def scale_options(f: F) -> F:
    """How large scenes are cut and where the work runs: shared by the encoding commands."""
    for opt in reversed([
        click.option("--tile", type=int, default=None, metavar="PIXELS",
                     help="Side of the square tiles a large scene is coded in (default: "
                          "chosen from the scene and the model; a scene that fits one tile "
                          "is not tiled)."),
        click.option("--tile-margin", "tile_margin", type=click.IntRange(0, 64), default=None,
                     metavar="PIXELS",
                     help="Pixels each tile is fitted beyond its edges and the decoder drops, "
                          "so tile borders do not show (default: the model's, 8 for both)."),
        click.option("--workers", type=int, default=1, show_default=True,
                     callback=_positive,
                     help="Tiles (or files) encoded at once, each in its own process."),
        click.option("--threads", type=int, default=None, callback=_positive,
                     help="Torch threads per tile or file job (default 1 for tiles and "
                          "batches; for one untiled file, one per 8192 pixels of the frame "
                          "up to all cores). The same value gives the same bytes serially, "
                          "with workers or on a cluster."),
        click.option("--backend", type=click.Choice(["local", "dask"]), default="local",
                     show_default=True,
                     help="Run jobs in local processes or on Dask (pip install 'hsz[dask]')."),
        click.option("--scheduler", metavar="ADDRESS", default=None,
                     help="Dask scheduler to use (tcp://host:8786); default: a local "
                          "cluster of --workers processes."),
    ]):
        f = opt(f)
    return f


@cli.command(context_settings={"max_content_width": 100})
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True,
                type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="The .hsz file to write (default: INPUT with the suffix .hsz); with "
                   "several inputs, the folder to write them to.")
@click.option("--bpppb", type=float, default=None,
              help="Target bits per pixel per band for the whole file (default 0.2).")
@click.option("--size", "size_bytes", type=int, default=None,
              help="Target file size in bytes, instead of --bpppb.")
@click.option("--ratio", type=float, default=None,
              help="Target compression ratio against the source bit depth, instead of --bpppb.")
@click.option("--model", "model_id", metavar="ID", default=None, help=_model_help())
@click.option("--preset", metavar="NAME", default=None, help=_preset_help())
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Fit for exactly this many epochs (hiner) or noisy iterations (latent), "
                   "instead of the preset's count.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed; the same seed gives the same file on the same machine.")
@device_option
@scale_options
@reader_options
@overwrite_option
@json_option
@verbosity
def encode(
    inputs: tuple[Path, ...], output: Path | None, bpppb: float | None, size_bytes: int | None,
    ratio: float | None, model_id: str | None, preset: str | None, epochs: int | None,
    seed: int, device: str | None, tile: int | None, tile_margin: int | None, workers: int,
    threads: int | None, backend: str, scheduler: str | None,
    fmt: str | None, var: str | None, layout: str | None, in_wavelengths: str | None,
    nodata: float | None, overwrite: bool, as_json: bool,
) -> None:
    """Compress hyperspectral cubes into .hsz files.

    The file size is the rate: --bpppb counts every byte of the file over the cube's
    true rows x cols x bands.  Several inputs (or -o naming a folder) make a batch: each
    input becomes OUTPUT/NAME.hsz, and outputs that already exist are skipped, so an
    interrupted batch resumes where it stopped (--overwrite encodes them again).
    """
    from hsz import api, io, spectral
    from hsz.fsutil import atomic_outputs, check_writable
    from hsz.parallel import Runner

    runner = Runner(workers=workers, backend=backend, address=scheduler,
                    gpu=(device or "").startswith("cuda"))
    wl = spectral.parse_wavelengths(in_wavelengths) if in_wavelengths else None
    read = {"format": fmt, "var": var, "layout": layout, "wavelengths": wl, "nodata": nodata}
    options = {"bpppb": bpppb, "size": size_bytes, "ratio": ratio, "model": model_id,
               "preset": preset, "epochs": epochs, "device": device or "auto", "seed": seed,
               "tile": tile, "margin": tile_margin, "threads": threads}
    if len(inputs) > 1 or (output is not None and output.is_dir()):
        _encode_batch(inputs, output, read, options, runner, overwrite, as_json)
        return
    input_path = inputs[0]
    output = output or input_path.with_suffix(".hsz")
    check_writable([output], overwrite)
    with io.open_scene(input_path, report=_note, **read) as scene:
        cube = scene.header
        _note(f"read {input_path}: {cube.bands} bands x {cube.height} x {cube.width}, "
              f"{cube.dtype.name}" + ("" if cube.wavelengths is None else
                                      f", {cube.wavelengths.min():g}-"
                                      f"{cube.wavelengths.max():g} nm"))
        if not cube.wavelengths_increasing:
            _note("note: the wavelengths are not strictly increasing; bands keep their order")
        with _progress("fitting", "epochs") as update:
            result = api.encode_scene(scene, **options, runner=runner, progress=update,
                                      report=_note if _state().verbose else None)
    with atomic_outputs([output], overwrite) as (tmp,):
        tmp.write_bytes(result.data)
    summary = {
        "output": str(output),
        "bytes": result.size,
        "bpppb": result.bpppb,
        "compression_ratio": result.ratio,
        **{k: float(v) for k, v in result.quality.items()},
        "seconds": result.seconds,
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    elif not _state().quiet:
        _print_summary("encoded", summary)


def _encode_batch(inputs: tuple[Path, ...], output: Path | None, read: dict[str, Any],
                  options: dict[str, Any], runner: Any, overwrite: bool,
                  as_json: bool) -> None:
    """Many inputs, one job each; finished outputs are skipped unless --overwrite."""
    from hsz import io
    from hsz.batch import FileJob, encode_file, output_for
    from hsz.io.scene import SceneSpec

    if output is None:
        raise UsageError("several inputs need -o/--output naming the folder to write to",
                         option="output")
    if output.exists() and not output.is_dir():
        raise UsageError(f"{output} exists and is not a folder; several inputs are written "
                         "into a folder", option="output")
    output.mkdir(parents=True, exist_ok=True)
    targets = [output_for(p, output) for p in inputs]
    if len(set(targets)) != len(targets):
        raise UsageError("two inputs have the same name, so their outputs would collide; "
                         "encode them into different folders")
    if options["threads"] is None:
        options = {**options, "threads": 1}
    wl = read["wavelengths"]
    jobs, skipped = [], []
    for p, out in zip(inputs, targets, strict=True):
        if out.exists() and not overwrite:
            skipped.append(str(out))
            continue
        io.format_for_path(p, read["format"])  # refuse an unreadable name before any work
        spec = SceneSpec(str(p), read["format"], read["var"], read["layout"],
                         None if wl is None else tuple(float(v) for v in wl), read["nodata"])
        jobs.append(FileJob(spec, str(out), tuple(options.items()), overwrite))
    for out_path in skipped:
        _note(f"skipped {out_path}: it exists (an earlier run finished it)")
    with _progress("encoding", "files") as update:
        if jobs:
            update({"tile": 0, "tiles": len(jobs), "unit": "files"})
        count = [0]

        def done(_i: int, _r: dict[str, Any]) -> None:
            count[0] += 1
            update({"tile": count[0], "tiles": len(jobs), "unit": "files"})

        results = runner.map(encode_file, jobs, done)
    failed = [r for r in results if "error" in r]
    if as_json:
        click.echo(json.dumps({"encoded": results, "skipped": skipped}, indent=2))
    elif not _state().quiet:
        for r in results:
            if "error" in r:
                err_console.print(f"[red]failed[/red] {r['input']}: {r['error']}")
            else:
                err_console.print(f"{r['input']} -> {r['output']}: {r['bytes']:,d} B, "
                                  f"{r['bpppb']:.4f} bpppb, {r['psnr_band_mean']:.2f} dB, "
                                  f"{r['seconds']:.1f} s")
        err_console.print(f"{len(results) - len(failed)} encoded, {len(failed)} failed, "
                          f"{len(skipped)} skipped")
    if failed:
        raise HszError(f"{len(failed)} of {len(jobs)} inputs failed; the rest are written")


def _print_summary(title: str, summary: dict[str, Any]) -> None:
    table = Table(title=title, show_header=False, box=None, pad_edge=False)
    fmt = {
        "bytes": "{:,d} B", "bpppb": "{:.4f}", "compression_ratio": "{:.1f}x",
        "psnr_band_mean": "{:.2f} dB", "psnr_global": "{:.2f} dB", "sam_deg": "{:.3f} deg",
        "seconds": "{:.1f} s",
    }
    for key, value in summary.items():
        text = fmt[key].format(value) if key in fmt and value is not None else str(value)
        table.add_row(key.replace("_", " "), text)
    err_console.print(table)


# -- decode -------------------------------------------------------------------------------------


@cli.command(context_settings={"max_content_width": 100})
@click.argument("input_path", metavar="INPUT.hsz", type=click.Path(path_type=Path))
@output_option("The cube to write; its extension picks the format (.tif .img .hdr .mat .npy).")
@click.option("--format", "fmt", metavar="NAME", default=None, help=format_help)
@click.option("--wavelengths", "wavelengths", metavar="SPEC", default=None,
              help="Decode at these wavelengths instead of the encoded bands: 450:950:5 "
                   "(stop included when on the grid), 550,660,865, or a file; nm unless "
                   "'um' follows.")
@click.option("--extrapolate", is_flag=True,
              help="Allow wavelengths outside the encoded range (quality is not assured).")
@click.option("--dtype", type=click.Choice(["source", "float32", "float64"]), default="source",
              show_default=True, help="Sample type of the output.")
@click.option("--window", "window_spec", metavar="COL,ROW,WIDTH,HEIGHT", default=None,
              help="Decode only this rectangle of pixels (only the tiles under it are read).")
@click.option("--bbox", metavar="MINX,MINY,MAXX,MAXY", default=None,
              help="Decode only the pixels inside this box in the file's map coordinates.")
@device_option
@overwrite_option
@verbosity
def decode(
    input_path: Path, output: Path, fmt: str | None, wavelengths: str | None,
    extrapolate: bool, dtype: str, window_spec: str | None, bbox: str | None,
    device: str | None, overwrite: bool,
) -> None:
    """Rebuild a cube from a .hsz file, at its own bands or at new wavelengths.

    The output is written tile by tile, so a large scene never needs to fit in memory
    (except for .mat outputs, which are written whole).
    """
    from hsz import api, io, spectral
    from hsz.archive import Archive

    start = time.perf_counter()
    out_format = io.format_for_path(output, fmt, for_write=True)
    _check_input(input_path)
    from hsz.fsutil import check_writable

    check_writable([output], overwrite)
    wl = spectral.parse_wavelengths(wavelengths) if wavelengths else None
    if extrapolate and wl is not None:
        _note("warning: wavelengths outside the encoded range are extrapolated, not measured")
    if window_spec is not None and bbox is not None:
        raise UsageError("give --window or --bbox, not both", option="window")
    window = None
    source: Any = input_path
    if window_spec is not None:
        window = _parse_window(window_spec)
    elif bbox is not None:
        source = Archive(input_path)  # opened once: for the box, then for decoding
        window = source.bbox_window(*_numbers(bbox, 4, "bbox"))
    with _progress("decoding", "bands") as update:
        written, cube = api.decode_to_file(
            source, output, format=out_format, overwrite=overwrite, wavelengths=wl,
            dtype=None if dtype == "source" else dtype, device=device or "cpu",
            extrapolate=extrapolate, progress=update, window=window)
    if not _state().quiet:
        _print_summary("decoded", {
            "output": ", ".join(str(p) for p in written),
            "shape": f"{cube.bands} bands x {cube.height} x {cube.width} ({cube.dtype.name})",
            "seconds": time.perf_counter() - start,
        })


def _numbers(text: str, count: int, option: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != count or not all(np.isfinite(values)):
        raise UsageError(f"--{option} needs {count} comma-separated numbers, got {text!r}",
                         option=option)
    return values


def _parse_window(text: str) -> Any:
    from hsz.tiles import Window

    col, row, width, height = _numbers(text, 4, "window")
    if not all(float(v).is_integer() for v in (col, row, width, height)) or min(
            col, row) < 0 or min(width, height) < 1:
        raise UsageError(f"--window needs whole numbers COL,ROW >= 0 and WIDTH,HEIGHT >= 1, "
                         f"got {text!r}", option="window")
    return Window(int(row), int(col), int(height), int(width))


def _check_input(path: Path) -> None:
    if not path.exists():
        raise HszError(f"{path}: no such file")
    if path.is_dir():
        raise HszError(f"{path} is a directory, not a .hsz file")


# -- info ---------------------------------------------------------------------------------------


@cli.command(context_settings={"max_content_width": 100})
@click.argument("input_path", metavar="INPUT.hsz", type=click.Path(path_type=Path))
@json_option
@verbosity
def info(input_path: Path, as_json: bool) -> None:
    """Describe a .hsz file without decoding it, and verify its checksums.

    Every section's CRC-32 is checked; a damaged file is still described as far as it
    can be read, and the exit status is 1.
    """
    from hsz import api
    from hsz.codec.binio import DAMAGED
    from hsz.codec.container import damage_summary
    from hsz.errors import FormatError

    _check_input(input_path)
    described = api.describe(input_path)
    if as_json:
        click.echo(json.dumps(described, indent=2, default=_jsonable))
    else:
        _print_info(described)
    integrity = described["integrity"]
    if not integrity["intact"]:
        raise FormatError(f"{input_path}: {damage_summary(integrity)}; {DAMAGED}")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _print_info(d: dict[str, Any]) -> None:
    from hsz.infotext import render_info

    out_console.print(render_info(d))


def main() -> None:
    cli(prog_name="hsz")



# -- eval ---------------------------------------------------------------------------------------


def _read_reference(
    path: Path, fmt: str | None, var: str | None, layout: str | None,
    in_wavelengths: str | None, nodata: float | None,
) -> Any:
    """Read the cube the shared reader options describe (the original, for eval/preview)."""
    from hsz import io, spectral

    wl = spectral.parse_wavelengths(in_wavelengths) if in_wavelengths else None
    cube = io.read(path, format=fmt, var=var, layout=layout, wavelengths=wl, nodata=nodata,
                   report=_note)
    _note(f"read {path}: {cube.bands} bands x {cube.height} x {cube.width}, {cube.dtype.name}")
    return cube


def _read_cube_or_hsz(path: Path, device: str | None) -> tuple[Any, int | None]:
    """A cube from a cube file (read with its format's own conventions) or by decoding a .hsz.

    Returns the cube and, for a .hsz, the file's size: the rate a comparison reports.
    """
    from hsz import io
    from hsz.evaluate import is_hsz

    _check_input(path)
    if not is_hsz(path):
        cube = io.read(path, report=_note)
        _note(f"read {path}: {cube.bands} bands x {cube.height} x {cube.width}, "
              f"{cube.dtype.name}")
        return cube, None
    from hsz import api

    with _progress("decoding", "bands") as update:
        cube = api.decode(path, device=device or "cpu", progress=update)
    return cube, path.stat().st_size


@cli.command("eval", context_settings={"max_content_width": 100})
@click.argument("original_path", metavar="ORIGINAL", type=click.Path(path_type=Path))
@click.argument("decoded_path", metavar="DECODED_OR_HSZ", type=click.Path(path_type=Path))
@reader_options
@device_option
@json_option
@verbosity
def eval_command(
    original_path: Path, decoded_path: Path, fmt: str | None, var: str | None,
    layout: str | None, in_wavelengths: str | None, nodata: float | None, device: str | None,
    as_json: bool,
) -> None:
    """Measure what a decoded cube, or a .hsz file, lost against its original.

    \b
      hsz eval scene.tif scene.hsz          # decodes the .hsz; adds its bpppb and ratio
      hsz eval scene.tif scene_back.tif --json

    Reports PSNR (mean of per-band PSNRs and global), spectral angle, the largest
    absolute error and the worst bands. Nodata pixels of ORIGINAL are left out. The
    reading options (--format, --var, --layout, --wavelengths, --nodata) apply to
    ORIGINAL; a decoded cube file is read as its format says (as hsz decode writes it).
    """
    from hsz.evaluate import compare

    original = _read_reference(original_path, fmt, var, layout, in_wavelengths, nodata)
    decoded, file_bytes = _read_cube_or_hsz(decoded_path, device)
    report = {"original": str(original_path), "decoded": str(decoded_path),
              **compare(original, decoded, file_bytes=file_bytes)}
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    _print_eval(report)


def _print_eval(r: dict[str, Any]) -> None:
    table = Table(title=f"{r['decoded']} against {r['original']}", show_header=False, box=None,
                  pad_edge=False, title_justify="left")
    rows: list[tuple[str, str]] = []
    if "bytes" in r:
        rows += [("bytes", f"{r['bytes']:,d} B"), ("bpppb", f"{r['bpppb']:.4f}"),
                 ("compression ratio", f"{r['compression_ratio']:.1f}x")]
    bands, height, width = r["shape"]
    rows += [
        ("shape", f"{bands} bands x {height} x {width}"),
        ("valid pixels", f"{r['valid_pixels']:,d} of {height * width:,d}"),
        ("psnr band mean", f"{r['psnr_band_mean']:.2f} dB"),
        ("psnr global", f"{r['psnr_global']:.2f} dB"),
        ("sam", f"{r['sam_deg']:.3f} deg"),
        ("max abs error", f"{r['max_abs_error']:.6g}"),
        ("band psnr min / median", f"{r['band_psnr']['min']:.2f} / "
                                   f"{r['band_psnr']['median']:.2f} dB"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    out_console.print(table)
    worst = Table(title="worst bands", box=None, pad_edge=False, title_justify="left")
    worst.add_column("band", justify="right")
    worst.add_column("name")
    worst.add_column("wavelength", justify="right")
    worst.add_column("psnr", justify="right")
    for w in r["band_psnr"]["worst"]:
        wl = f"{w['wavelength_nm']:g} nm" if "wavelength_nm" in w else "-"
        worst.add_row(str(w["band"]), w["name"], wl, f"{w['psnr']:.2f} dB")
    out_console.print(worst)


# -- preview ------------------------------------------------------------------------------------


@cli.command(context_settings={"max_content_width": 100})
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@output_option("The PNG to write.")
@click.option("--rgb", metavar="R,G,B", default=None,
              help="Wavelengths shown as red, green, blue, e.g. 860,650,550 for false colour "
                   "(default: bands nearest 640,550,470 nm); 1-based band numbers when the "
                   "cube has no wavelengths.")
@click.option("--error", "error_path", metavar="ORIGINAL", type=click.Path(path_type=Path),
              default=None,
              help="Also draw per-pixel RMSE and spectral-angle maps of INPUT against ORIGINAL.")
@reader_options
@device_option
@overwrite_option
@json_option
@verbosity
def preview(
    input_path: Path, output: Path, rgb: str | None, error_path: Path | None, fmt: str | None,
    var: str | None, layout: str | None, in_wavelengths: str | None, nodata: float | None,
    device: str | None, overwrite: bool, as_json: bool,
) -> None:
    """Draw a quick-look PNG of a cube or a .hsz file.

    \b
      hsz preview scene.hsz -o look.png
      hsz preview scene.hsz -o errors.png --error scene.tif
      hsz preview scene.tif -o cir.png --rgb 860,650,550

    Each channel is stretched between its 2nd and 98th percentiles; nodata is black.
    The reading options apply to ORIGINAL when --error is given, else to INPUT.
    """
    from hsz import spectral
    from hsz.fsutil import check_writable
    from hsz.preview import preview as draw_preview

    if output.suffix.lower() != ".png":
        raise UsageError(f"the quick look is a PNG: name the output .png, not {output.name}")
    check_writable([output], overwrite)
    rgb_values = None if rgb is None else [float(v) for v in spectral.parse_wavelengths(rgb)]
    reference = None
    if error_path is not None:
        reference = _read_reference(error_path, fmt, var, layout, in_wavelengths, nodata)
        cube, _ = _read_cube_or_hsz(input_path, device)
    else:
        from hsz.evaluate import is_hsz

        _check_input(input_path)
        if is_hsz(input_path):
            cube, _ = _read_cube_or_hsz(input_path, device)
        else:
            cube = _read_reference(input_path, fmt, var, layout, in_wavelengths, nodata)
    if (reference is not None and cube.wavelengths is None
            and reference.wavelengths is not None and reference.bands == cube.bands):
        # A decoded .npy/.mat carries no wavelengths; the original's say which bands are RGB.
        cube = cube.replace(wavelengths=reference.wavelengths)
    info = draw_preview(cube, output, rgb=rgb_values, reference=reference, overwrite=overwrite)
    if info.get("note"):
        _note(f"note: {info['note']}")
    if as_json:
        click.echo(json.dumps(info, indent=2))
    elif not _state().quiet:
        shown = ", ".join(
            f"{w:g} nm" for w in info.get("rgb_wavelengths_nm", [])
        ) or ", ".join(f"band {b}" for b in info["rgb_bands"])
        summary: dict[str, Any] = {"output": info["output"], "rgb": shown,
                                   "size": "{} x {} px".format(*info["size"])}
        if reference is not None:
            summary["rmse mean / p99"] = f"{info['rmse_mean']:.4g} / {info['rmse_p99']:.4g}"
            summary["sam mean / p99"] = (f"{info['sam_mean_deg']:.3f} / "
                                         f"{info['sam_p99_deg']:.3f} deg")
        _print_summary("preview", summary)


if __name__ == "__main__":
    main()
