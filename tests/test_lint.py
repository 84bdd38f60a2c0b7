"""ruff over the package, tests, scripts, benchmarks and the notebooks' code cells."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is not installed: pip install -e '.[dev]'"
    targets = [t for t in ("helpers", "tests", "scripts", "bench", "notebooks") if (ROOT / t).exists()]
    result = subprocess.run([ruff, "check", "--no-cache", *targets], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
