"""Shared test fixtures. Tests run on the CPU with tiny models; GPU tests skip without CUDA."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """../shared/data beside the clone (or $FV_SHARED_DATA), None where absent."""
    for cand in (os.environ.get("FV_SHARED_DATA"), REPO.parent / "shared" / "data"):
        if cand and Path(cand).is_dir():
            return Path(cand)
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if d is None:
        pytest.skip("../shared/data is absent (set FV_SHARED_DATA to the folder with the Pexels video)")
    return d


@pytest.fixture(scope="session")
def pexels_video(shared_data) -> Path:
    p = shared_data / "WolfgangLanger_Pexels.mp4"
    if not p.exists():
        pytest.skip(f"{p} is absent")
    return p


def pytest_collection_modifyitems(config, items):
    has_cuda = torch.cuda.is_available()
    try:
        import tensorrt  # noqa: F401
        has_trt = has_cuda
    except Exception:
        has_trt = False
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
        if "trt" in item.keywords and not has_trt:
            item.add_marker(pytest.mark.skip(reason="needs TensorRT and a CUDA GPU"))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    from tests.tiny import make_tiny_data
    return make_tiny_data(tmp_path_factory.mktemp("tinydata"))


@pytest.fixture(autouse=True)
def _few_threads():
    # One intra-op thread: the tests' tensors are tiny, and on a loaded 2-core machine two OpenMP
    # threads per process made them many times slower.
    torch.set_num_threads(1)
    yield
