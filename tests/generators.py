"""Running an example generator (``examples/train_*.py``) the way the shipped files were made.

Seeded numpy training is deterministic on one host but not across hosts: numpy's AVX-512 loops
and OpenBLAS's AVX-512 kernels round some results differently in the last place from the AVX2
ones, and training carries the difference into the weights (measured on an AVX-512 VNNI host:
120 of the mobile CNN's 5,775 values differ, top-1 unchanged). The shipped files were made with
the AVX2 paths, so :data:`PINNED_ENV` holds numpy's dispatch at x86-64-v3 and OpenBLAS at its
Haswell kernels: with it, the generators write the shipped bytes on that host too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

#: Environment of a generator child that writes the same bytes on every x86-64-v3 host (numpy
#: ignores a disabled feature the host does not have).
PINNED_ENV = {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
              "OPENBLAS_CORETYPE": "Haswell"}


def run_generator(script: str, inputs: tuple[str, ...], workdir: Path) -> None:
    """Copy ``script`` and its ``inputs`` from examples/ into ``workdir`` and run it there with
    :data:`PINNED_ENV` (its outputs land next to the copy).

    Raises
    ------
    subprocess.CalledProcessError
        The generator failed (its output is in the exception).
    """
    for f in (script, *inputs):
        shutil.copy(EXAMPLES / f, workdir / f)
    subprocess.run([sys.executable, str(workdir / script)], check=True, capture_output=True,
                   env={**os.environ, **PINNED_ENV})
