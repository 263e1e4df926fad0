import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # loader_files.py

from loader_files import build_gcc_elf  # noqa: E402


@pytest.fixture(scope="session", params=[32, 64], ids=["gcc-m32", "gcc-m64"])
def gcc_elf(request, tmp_path_factory):
    """(bits, path) of a static freestanding C guest built by gcc at 0x200000; skipped with
    the reason when this machine cannot build it."""
    path, why = build_gcc_elf(request.param, tmp_path_factory.mktemp(f"gcc{request.param}"))
    if path is None:
        pytest.skip(why)
    return request.param, path
