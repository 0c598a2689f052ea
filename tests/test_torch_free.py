"""Planning, the codec, metadata and ``info`` never need torch (a test with torch blocked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
GOLDEN = HERE.parent / "format" / "v1.0" / "indian_pines_u16.hsz"

_BLOCK = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
        return None
sys.meta_path.insert(0, _NoTorch())
"""


def _run(body: str) -> subprocess.CompletedProcess[str]:
    code = _BLOCK + body
    return subprocess.run([sys.executable, "-c", code, str(GOLDEN), str(HERE)],
                          capture_output=True, text=True, timeout=120)


def test_planning_a_hiner_budget_and_reading_files_work_without_torch() -> None:
    r = _run("""
import numpy as np
import hsz.rate, hsz.codec, hsz.meta
from hsz import api, rate
from hsz.cube import Cube
cube = Cube(np.zeros((200, 145, 145), dtype=np.uint16), wavelengths=np.linspace(400, 2500, 200))
prep = api.plan_encode(cube, bpppb=0.1, model="hiner")
assert prep.plan.model == "hiner" and prep.plan.config.bands == 200
info = api.describe(sys.argv[1])
assert info["meta"]["model"]["id"] == "hiner"
from hsz.model import get_family
assert "balanced" in get_family("hiner").presets
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
print("ok")
""")
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_a_torch_free_family_encodes_and_decodes_with_torch_blocked() -> None:
    r = _run("""
import numpy as np
sys.path.insert(0, sys.argv[2])
from toy_family import TOY
from hsz.model import register
register(TOY)
from hsz import api
from hsz.cube import Cube
data = np.load(sys.argv[2] + "/data/ip_tiny.npy")
cube = Cube(np.ascontiguousarray(np.moveaxis(data, -1, 0)))
result = api.encode(cube, bpppb=1.0, model=TOY.id, device="cpu")
assert api.decode(result.data).shape == cube.shape
print("ok")
""")
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
