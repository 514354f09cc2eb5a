"""ONNX Runtime execution providers: CUDA when it can really run, else CPU.

``onnxruntime-gpu`` lists ``CUDAExecutionProvider`` as available even on machines without
an NVIDIA driver or without its CUDA/cuDNN libraries; asking for it there makes ONNX Runtime
print a long error. :func:`cuda_status` therefore checks first — a driver with at least one
GPU (``libcuda``: ``cuInit`` + ``cuDeviceGetCount``) and the CUDA runtime, cuBLAS and cuDNN
libraries this ONNX Runtime build needs (loaded from the ``nvidia-*`` wheels or the system
path, the same places ``onnxruntime.preload_dlls`` looks) — and says why not in one line.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import platform
from pathlib import Path

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def quiet_onnxruntime() -> None:
    """Make ONNX Runtime log errors only (severity 3) from now on."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)


def _gpu_count() -> tuple[int, str]:
    """Number of CUDA devices the driver sees, and a reason when 0."""
    names = ["nvcuda.dll"] if platform.system() == "Windows" else ["libcuda.so.1", "libcuda.so"]
    lib = None
    for name in names:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if lib is None:
        return 0, "no NVIDIA driver found (libcuda not loadable)"
    try:
        if lib.cuInit(0) != 0:
            return 0, "the NVIDIA driver found no usable GPU (cuInit failed)"
        count = ctypes.c_int(0)
        if lib.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
            return 0, "the NVIDIA driver reports no GPU"
    except AttributeError:
        return 0, "the NVIDIA driver library lacks the CUDA driver API"
    return count.value, ""


def _required_cuda_libs() -> list[tuple[str, ...]]:
    """Relative paths (inside site-packages) of the CUDA libraries ONNX Runtime needs."""
    import onnxruntime as ort

    windows = platform.system() == "Windows"
    getter = getattr(ort, "_get_nvidia_dll_paths", None)
    if getter is not None:
        try:
            paths = [tuple(p) for p in getter(windows, True, True)]
            return [p for p in paths if not any(s in p[-1] for s in ("cufft", "nvrtc", "curand"))]
        except (TypeError, ValueError, OSError, IndexError) as exc:  # private helper changed
            log.debug("onnxruntime's CUDA library list unusable (%s); using ours", exc)
    major = str(getattr(ort, "cuda_version", "12") or "12").split(".")[0]
    if windows:
        return [(f"cudart64_{major}.dll",), (f"cublas64_{major}.dll",), ("cudnn64_9.dll",)]
    return [(f"libcudart.so.{major}",), (f"libcublasLt.so.{major}",),
            (f"libcublas.so.{major}",), ("libcudnn.so.9",)]


def _load_lib(rel: tuple[str, ...]) -> bool:
    """Load one library from the ``nvidia-*`` wheels (site-packages) or the system path."""
    import onnxruntime as ort

    candidates = []
    if len(rel) > 1:
        in_wheel = Path(ort.__file__).resolve().parent.parent.joinpath(*rel)
        if in_wheel.is_file():
            candidates.append(os.fspath(in_wheel))
    candidates.append(rel[-1])
    for cand in candidates:
        try:
            ctypes.CDLL(cand)
            return True
        except OSError:
            continue
    return False


@functools.lru_cache(maxsize=1)
def cuda_status() -> tuple[bool, str]:
    """``(usable, reason)``: whether ONNX Runtime's CUDA provider can run here, and why not.

    Cached for the process. Never raises, never prints.
    """
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - onnxruntime is a dependency
        return False, "onnxruntime is not installed"
    if CUDA not in ort.get_available_providers():
        return False, "this onnxruntime build has no CUDA provider"
    count, reason = _gpu_count()
    if count < 1:
        return False, reason
    missing = [rel[-1] for rel in _required_cuda_libs() if not _load_lib(rel)]
    if missing:
        return False, (f"CUDA libraries missing: {', '.join(missing)} (install the CUDA "
                       f"{getattr(ort, 'cuda_version', '')} runtime and cuDNN 9, e.g. "
                       "pip install 'onnxruntime-gpu[cuda,cudnn]')")
    return True, f"{count} CUDA GPU(s) and the CUDA libraries found"


def choose_providers(device: str = "auto") -> tuple[list[str], str]:
    """Providers to ask ONNX Runtime for, and the reason in words.

    Args:
        device: ``"auto"`` (CUDA when usable, else CPU), ``"cuda"`` (CUDA, falling back to
            CPU with the reason when unusable) or ``"cpu"``.
    """
    device = (device or "auto").lower()
    if device not in ("auto", "cuda", "cpu", "gpu"):
        raise ValueError(f"device must be 'auto', 'cuda' or 'cpu', got {device!r}")
    if device == "cpu":
        return [CPU], "CPU requested"
    ok, reason = cuda_status()
    if ok:
        return [CUDA, CPU], reason
    prefix = "CUDA requested but unavailable: " if device in ("cuda", "gpu") else ""
    return [CPU], prefix + reason


def session_options(threads: int = 1, optimization: str = "all", spinning: bool = False) -> object:
    """``onnxruntime.SessionOptions``: quiet, ``threads`` intra-op threads (0 = ORT default),
    one inter-op thread, sequential execution, graph optimisation ``"all"``/``"extended"``/
    ``"basic"``/``"none"``; ``spinning=False`` keeps idle worker threads from busy-waiting
    (the machine also runs capture and tracking)."""
    import onnxruntime as ort

    disable_telemetry = getattr(ort, "disable_telemetry_events", None)
    if disable_telemetry is not None:  # no telemetry (see mestudio/__init__.py)
        disable_telemetry()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = max(0, int(threads))
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }[optimization]
    if not spinning:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so
