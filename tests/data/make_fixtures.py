"""Cut the small real-data fixtures in this folder from the full scenes.

Run from anywhere:  python tests/data/make_fixtures.py [SOURCE_DIR]
SOURCE_DIR defaults to ../shared/data relative to the repository root; its SOURCES.md says
where each scene comes from.  The crops are deterministic, so running this again gives
byte-identical files except the timestamp in the v7.3 header.

Writing deliberately avoids hsz.io: the fixtures must be an independent reference for the
readers, so the ENVI header is copied as text, the v5 file goes through scipy and the v7.3
file is laid out by hand the way MATLAB lays it out.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import scipy.io

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[1].parent / "shared" / "data"

# Crop windows: (row slice, col slice).  Rows and cols differ in every crop so that a
# swapped axis cannot go unnoticed.
INDIAN_PINES = (slice(40, 64), slice(60, 80))  # 24 x 20 of 145 x 145, all 200 bands
CORN_BAND_STEP = 4  # 580 -> 145 bands, full 31 x 43 frame
JASPER = (slice(30, 50), slice(40, 56))  # 20 x 16 of 100 x 100, all 198 bands
SAMSON = (slice(20, 32), slice(50, 60))  # 12 x 10 of 95 x 95, all 156 bands
CAVE = (slice(200, 232), slice(240, 264))  # 32 x 24 of 512 x 512, all 31 bands


def indian_pines(src: Path) -> None:
    cube = np.load(src / "indian_pines_corrected.npy")  # (row, col, band) uint16
    np.save(HERE / "indian_pines_crop.npy", np.ascontiguousarray(cube[INDIAN_PINES]))
    shutil.copyfile(src / "indian_pines_corrected_wavelengths.csv",
                    HERE / "indian_pines_crop_wavelengths.csv")


def corn_kernel(src: Path) -> None:
    """Every 4th band of the PlantCV ENVI file, still BIL, header fields copied as text."""
    header = (src / "corn_kernel_plantcv.hdr").read_text(encoding="latin-1")
    fields = dict(re.findall(r"^(\w[\w ]*?)\s*=\s*([^{\n]*)$", header, flags=re.M))
    lines, samples, bands = (int(fields[k]) for k in ("lines", "samples", "bands"))
    assert fields["interleave"].strip() == "bil" and fields["data type"].strip() == "12"
    raw = np.fromfile(src / "corn_kernel_plantcv.raw", dtype="<u2")
    bil = raw.reshape(lines, bands, samples)[:, ::CORN_BAND_STEP, :]
    np.ascontiguousarray(bil).tofile(HERE / "corn_kernel_crop.raw")
    wl = re.search(r"wavelength = \{(.*?)\}", header, flags=re.S)
    assert wl is not None
    values = [v.strip() for v in wl.group(1).split(",") if v.strip()][::CORN_BAND_STEP]
    kept = bil.shape[1]
    out = re.sub(r"^bands = \d+$", f"bands = {kept}", header, flags=re.M)
    out = out.replace(wl.group(0), "wavelength = {\n" + ",\n".join(values) + "\n}")
    out = out.replace("ENVI\n", f"ENVI\n; hsz test fixture: every {CORN_BAND_STEP}th band of "
                      "corn_kernel_plantcv (tests/data/make_fixtures.py)\n", 1)
    (HERE / "corn_kernel_crop.hdr").write_text(out, encoding="latin-1")


def jasper_ridge(src: Path) -> None:
    """v5 .mat with the cube as MATLAB (rows, cols, bands) plus the real band list."""
    m = scipy.io.loadmat(src / "jasper_ridge_198.mat")
    cube = np.reshape(m["Y"].T, (100, 100, 198), order="F")[JASPER]
    selected = m["SlectBands"].ravel().astype(int)  # 1-based indices into 224 AVIRIS bands
    wl = scipy.io.loadmat(src / "aviris_224_wavelengths_borsoi.mat")["AVIRIS_wavlen"].ravel()
    scipy.io.savemat(HERE / "jasper_ridge_crop.mat", {
        "jasper": np.ascontiguousarray(cube),
        "SlectBands": m["SlectBands"],
        "wavelength": wl[selected - 1].reshape(-1, 1),
    })


def samson(src: Path) -> None:
    """v7.3 (HDF5) .mat written the way MATLAB writes one: axes reversed, 512-byte header."""
    m = scipy.io.loadmat(src / "samson.mat")
    cube = np.reshape(m["V"].T, (95, 95, 156), order="F")[SAMSON]  # (rows, cols, bands)
    path = HERE / "samson_crop_v73.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        ds = f.create_dataset("samson", data=np.ascontiguousarray(cube.T))  # (bands, cols, rows)
        ds.attrs["MATLAB_class"] = np.bytes_("double")
        n = f.create_dataset("nBand", data=np.array([[156.0]]))
        n.attrs["MATLAB_class"] = np.bytes_("double")
    text = (f"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: "
            f"{time.strftime('%a %b %d %H:%M:%S %Y')} HDF5 schema 1.00 .")
    header = text.encode("ascii").ljust(116, b" ") + b" " * 8 + b"\x00\x02IM"
    with open(path, "r+b") as fh:
        fh.write(header.ljust(512, b"\x00"))


def cave(src: Path) -> None:
    cube = np.load(src / "cave_balloons.npy")  # (band, row, col) uint16
    np.save(HERE / "cave_balloons_crop_bhw.npy", np.ascontiguousarray(cube[:, CAVE[0], CAVE[1]]))
    shutil.copyfile(src / "cave_balloons_wavelengths.csv",
                    HERE / "cave_balloons_crop_wavelengths.csv")


def main(argv: list[str]) -> int:
    src = Path(argv[1]) if len(argv) > 1 else DEFAULT_SOURCE
    for make in (indian_pines, corn_kernel, jasper_ridge, samson, cave):
        make(src)
    total = sum(p.stat().st_size for p in HERE.iterdir() if p.is_file())
    print(f"fixtures written to {HERE} ({total / 1e6:.2f} MB in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
