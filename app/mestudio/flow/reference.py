"""OpenCV's Dual TV-L1 as the accuracy reference, and test pairs with a known flow.

* :func:`opencv_tvl1` runs ``cv2.optflow.DualTVL1OpticalFlow`` (opencv-contrib) with the
  same parameter names as :func:`mestudio.flow.tvl1_flow`.
* :func:`smooth_field` / :func:`synthetic_pair` make image pairs whose true flow is known:
  a real face image and the same image moved by a smooth displacement field (Gaussian
  "bumps" like facial action units plus a sub-pixel global shift like head jitter). The
  benchmark (``mestudio bench flow``) and the tests measure the end-point error (EPE) on
  these pairs.

Flow convention everywhere: ``flow[y, x] = (u, v)`` in pixels such that
``next(x + u, y + v) ≈ prev(x, y)``; ``u`` is horizontal (to the right), ``v`` vertical (down).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: OpenCV's DualTVL1OpticalFlow defaults (opencv_contrib ``optflow`` module).
OPENCV_DEFAULTS: dict[str, Any] = {
    "tau": 0.25,
    "lambda_": 0.15,
    "theta": 0.3,
    "nscales": 5,
    "warps": 5,
    "epsilon": 0.01,
    "inner_iterations": 30,
    "outer_iterations": 10,
    "scale_step": 0.8,
    "gamma": 0.0,
    "median_filtering": 5,
}


def _cv_params(params: dict[str, Any]) -> dict[str, Any]:
    params = {k: v for k, v in params.items() if k != "remap_subpixel"}  # ours only
    unknown = set(params) - set(OPENCV_DEFAULTS) - {"lambda"}
    if unknown:
        raise ValueError(
            f"unknown TV-L1 parameter(s) {sorted(unknown)}; expected some of {sorted(OPENCV_DEFAULTS)}"
        )
    p = dict(OPENCV_DEFAULTS)
    p.update(params)
    if "lambda" in p:  # accept the plain name too
        p["lambda_"] = p.pop("lambda")
    return p


def create_opencv_tvl1(**params: Any) -> Any:
    """A ``cv2.optflow.DualTVL1OpticalFlow`` object with our parameter names.

    Note: OpenCV lowers its ``nscales`` member permanently when an image is too small for the
    pyramid (a level under 16 px), so reuse one object only for images of one size.
    """
    import cv2

    if not hasattr(cv2, "optflow"):
        raise RuntimeError(
            "cv2.optflow is missing: install opencv-contrib-python(-headless) for the reference TV-L1"
        )
    p = _cv_params(params)
    return cv2.optflow.DualTVL1OpticalFlow_create(  # type: ignore[attr-defined]
        tau=float(p["tau"]),
        lambda_=float(p["lambda_"]),
        theta=float(p["theta"]),
        nscales=int(p["nscales"]),
        warps=int(p["warps"]),
        epsilon=float(p["epsilon"]),
        innnerIterations=int(p["inner_iterations"]),
        outerIterations=int(p["outer_iterations"]),
        scaleStep=float(p["scale_step"]),
        gamma=float(p["gamma"]),
        medianFiltering=int(p["median_filtering"]),
        useInitialFlow=False,
    )


def opencv_tvl1(prev: np.ndarray, next: np.ndarray, **params: Any) -> np.ndarray:
    """OpenCV Dual TV-L1 optical flow from ``prev`` to ``next`` (the reference).

    Args:
        prev, next: grey images ``(H, W)``, ``uint8`` (0..255) or ``float32`` (OpenCV then
            assumes 0..1 and multiplies by 255). BGR ``(H, W, 3)`` uint8 is converted to grey.
        **params: TV-L1 parameters with the names of :func:`mestudio.flow.tvl1_flow`
            (``tau``, ``lambda_``, ``theta``, ``nscales``, ``warps``, ``epsilon``,
            ``inner_iterations``, ``outer_iterations``, ``scale_step``, ``gamma``,
            ``median_filtering``); OpenCV's defaults otherwise.

    Returns:
        ``(H, W, 2)`` float32 flow in pixels, ``[..., 0] = u`` (horizontal),
        ``[..., 1] = v`` (vertical).
    """
    import cv2

    a, b = np.asarray(prev), np.asarray(next)
    if a.ndim == 3 and a.shape[2] == 3:
        a = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY)
    if b.ndim == 3 and b.shape[2] == 3:
        b = cv2.cvtColor(b, cv2.COLOR_BGR2GRAY)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"expected two grey images of the same shape (H, W), got {a.shape} and {b.shape}"
        )
    if a.dtype != np.uint8:
        a = a.astype(np.float32)
        b = b.astype(np.float32)
    flow = create_opencv_tvl1(**params).calc(a, b, None)
    return np.ascontiguousarray(flow, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# pairs with a known flow


@dataclass
class SmoothField:
    """A smooth displacement field, defined continuously in pixel coordinates of a square
    image of side ``size``: ``w(x, y) = shift + Σ_k a_k · exp(-|p - c_k|² / (2 σ_k²))``.

    Attributes:
        size: side of the image the field refers to (pixels).
        centres: ``(K, 2)`` bump centres ``(x, y)`` in pixels.
        sigmas: ``(K,)`` bump widths in pixels.
        amplitudes: ``(K, 2)`` bump displacement vectors ``(u, v)`` in pixels.
        shift: global ``(u, v)`` translation in pixels.
    """

    size: int
    centres: np.ndarray
    sigmas: np.ndarray
    amplitudes: np.ndarray
    shift: np.ndarray = field(default_factory=lambda: np.zeros(2))

    def __call__(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Displacement ``(u, v)`` in pixels at points ``(x, y)`` (arrays of any shape)."""
        u = np.full(x.shape, float(self.shift[0]))
        v = np.full(x.shape, float(self.shift[1]))
        for (cx, cy), s, (au, av) in zip(self.centres, self.sigmas, self.amplitudes, strict=True):
            g = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2.0 * s * s))
            u = u + au * g
            v = v + av * g
        return u, v

    def on_grid(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Displacement on the grid ``xs`` × ``ys`` (1-D pixel coordinates); ``(len(ys),
        len(xs))`` arrays ``(u, v)``. Uses the separability of the Gaussians (fast)."""
        xs = np.asarray(xs, dtype=np.float64)
        ys = np.asarray(ys, dtype=np.float64)
        u = np.full((ys.size, xs.size), float(self.shift[0]))
        v = np.full((ys.size, xs.size), float(self.shift[1]))
        for (cx, cy), s, (au, av) in zip(self.centres, self.sigmas, self.amplitudes, strict=True):
            g = np.outer(
                np.exp(-((ys - cy) ** 2) / (2.0 * s * s)), np.exp(-((xs - cx) ** 2) / (2.0 * s * s))
            )
            u += au * g
            v += av * g
        return u, v

    def dense(self) -> np.ndarray:
        """The field on the pixel grid, ``(size, size, 2)`` float32 (u, v)."""
        r = np.arange(self.size, dtype=np.float64)
        u, v = self.on_grid(r, r)
        return np.stack([u, v], axis=-1).astype(np.float32)

    def max_magnitude(self) -> float:
        return float(np.linalg.norm(self.dense(), axis=-1).max())


def smooth_field(
    size: int, rng: np.random.Generator, max_px: float | None = None, n_bumps: int | None = None
) -> SmoothField:
    """A random micro-expression-like field on a ``size``-pixel square image.

    Bumps of width 6–16 % of the side sit in the central 70 % of the image (brows, eyes,
    mouth); the largest displacement is ``max_px`` pixels (default: uniform in
    ``[0.5, 3] · size / 128``, i.e. sub-pixel to a few pixels at 128 px), plus a global shift
    of at most ``0.3 · size / 128`` pixels (head jitter).
    """
    scale = size / 128.0
    if max_px is None:
        max_px = float(rng.uniform(0.5, 3.0) * scale)
    k = int(n_bumps if n_bumps is not None else rng.integers(3, 7))
    centres = rng.uniform(0.15 * size, 0.85 * size, size=(k, 2))
    sigmas = rng.uniform(0.06 * size, 0.16 * size, size=k)
    angles = rng.uniform(0, 2 * np.pi, size=k)
    mags = rng.uniform(0.3, 1.0, size=k)
    amplitudes = np.stack([np.cos(angles), np.sin(angles)], axis=1) * mags[:, None]
    shift = rng.uniform(-0.3, 0.3, size=2) * scale
    f = SmoothField(size, centres, sigmas, amplitudes, np.zeros(2))
    # scale the bumps so the largest total displacement (with the shift) is max_px
    bump_max = f.max_magnitude()
    f.amplitudes = amplitudes * (max(max_px - float(np.hypot(*shift)), 0.05) / max(bump_max, 1e-6))
    f.shift = shift
    return f


def synthetic_pair(
    image: np.ndarray,
    box: tuple[float, float, float, float],
    size: int,
    field: SmoothField,
    *,
    context: float = 1.6,
    supersample: int = 4,
    noise: float = 1.0,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A face crop and the same crop moved by ``field``, with the true flow.

    The square crop of side ``context · max(w, h)`` around ``box`` is rendered at
    ``supersample × size`` pixels straight from ``image`` (bicubic), once as is and once
    displaced, then both are area-averaged to ``size`` px, so both images have the same
    sampling blur and content that moves into the crop comes from outside it (as in a video).
    Gaussian sensor noise of ``noise`` grey levels is added to each before rounding to uint8.

    Args:
        image: BGR ``uint8`` ``(H, W, 3)`` or grey ``(H, W)``.
        box: face box ``(x, y, w, h)`` in ``image`` pixels.
        size: crop side in pixels.
        field: the displacement field (its ``size`` must equal ``size``).

    Returns:
        ``(prev, next, flow)``: grey ``uint8`` ``(size, size)`` twice and the true flow
        ``(size, size, 2)`` float32 in pixels with ``next(p + flow(p)) = prev(p)``.
    """
    import cv2

    if field.size != size:
        raise ValueError(f"field is for {field.size} px images, not {size}")
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    gray = gray.astype(np.float32)
    x, y, w, h = box
    side = context * max(w, h)
    x0 = x + w / 2.0 - side / 2.0
    y0 = y + h / 2.0 - side / 2.0
    n = size * supersample
    # crop-pixel coordinates p of the supersampled grid's pixel centres
    j = (np.arange(n, dtype=np.float64) + 0.5) / supersample - 0.5
    py, px = np.meshgrid(j, j, indexing="ij")

    def to_image(qx: np.ndarray, qy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = np.float32(side / size)
        return (
            (np.float32(x0 - 0.5) + (qx + np.float32(0.5)) * k).astype(np.float32),
            (np.float32(y0 - 0.5) + (qy + np.float32(0.5)) * k).astype(np.float32),
        )

    # next(q) = prev(m(q)) with m(q) = q - w(m(q)): fixed-point iteration (w is smooth and
    # small); w is evaluated once on the supersampled grid and interpolated in between
    fu, fv = (a.astype(np.float32) for a in field.on_grid(j, j))
    px, py = px.astype(np.float32), py.astype(np.float32)
    mx, my = px - fu, py - fv
    for _ in range(12):  # contraction <= ~0.4 per step (remap quantises positions to 1/32 px)
        jx = ((mx + 0.5) * supersample - 0.5).astype(np.float32)
        jy = ((my + 0.5) * supersample - 0.5).astype(np.float32)
        du = cv2.remap(fu, jx, jy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        dv = cv2.remap(fv, jx, jy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        nx, ny = px - du, py - dv
        done = max(np.abs(nx - mx).max(), np.abs(ny - my).max()) < 1e-3
        mx, my = nx, ny
        if done:
            break
    out = []
    for qx, qy in ((px, py), (mx, my)):
        ix, iy = to_image(qx, qy)
        hi = cv2.remap(gray, ix, iy, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101)
        lo = cv2.resize(hi, (size, size), interpolation=cv2.INTER_AREA)
        out.append(lo)
    rng = rng or np.random.default_rng(0)
    prev, nxt = (
        np.clip(
            np.rint(a + (rng.normal(0.0, noise, a.shape) if noise > 0 else 0.0)), 0, 255
        ).astype(np.uint8)
        for a in out
    )
    return prev, nxt, field.dense()


def endpoint_error(flow: np.ndarray, truth: np.ndarray, border: int = 0) -> float:
    """Mean end-point error ``mean ‖flow − truth‖`` in pixels.

    Args:
        flow, truth: ``(..., H, W, 2)`` flows (channels last) in pixels.
        border: pixels left out on each side (0 = the whole image).
    """
    f = np.asarray(flow, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if f.shape != t.shape:
        raise ValueError(f"flow {f.shape} and truth {t.shape} differ in shape")
    if border:
        f = f[..., border:-border, border:-border, :]
        t = t[..., border:-border, border:-border, :]
    return float(np.linalg.norm(f - t, axis=-1).mean())
