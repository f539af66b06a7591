"""``import qdinfer`` stays light: jax and numpyro come only with qdinfer.models."""

from __future__ import annotations

import subprocess
import sys


def test_import_qdinfer_does_not_import_jax():
    code = (
        "import sys, qdinfer\n"
        "bad = [m for m in ('jax', 'numpyro', 'arviz') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
