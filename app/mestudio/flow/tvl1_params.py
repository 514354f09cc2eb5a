"""Parameters of Dual TV-L1 (:func:`mestudio.flow.tvl1_flow`), without torch.

They live apart from the solver so that reading a model's preprocessing settings (done when a
model is loaded, before any flow is computed) does not import torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TVL1Params:
    """Parameters of Dual TV-L1 (names as OpenCV's, in snake case; ``lambda_`` = lambda).

    Attributes:
        tau: time step of the dual update (stable for ``tau <= 0.25``).
        lambda_: weight of the data term (smaller = smoother flow); for grey levels 0..255.
        theta: coupling between ``u`` and ``v``.
        nscales: number of pyramid levels (fewer when a level would be under 16 px).
        warps: warpings per level.
        epsilon: stopping threshold (``0`` = always run every iteration).
        inner_iterations: primal-dual steps per outer iteration.
        outer_iterations: outer iterations (each starts with median filtering) per warp.
        scale_step: size ratio between pyramid levels, in ``(0, 1)``.
        gamma: weight of the illumination variable (``0`` = off, OpenCV's default).
        median_filtering: side of the median filter applied to the flow (1 = off, 3 or 5).
        remap_subpixel: warp positions are rounded to ``1 / remap_subpixel`` pixel, as
            OpenCV's ``remap`` does (32); 0 = exact positions. Not an OpenCV parameter.
    """

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    gamma: float = 0.0
    median_filtering: int = 5
    remap_subpixel: int = 32

    def __post_init__(self) -> None:
        checks = [
            (self.tau > 0, "tau must be > 0"),
            (self.lambda_ > 0, "lambda_ must be > 0"),
            (self.theta > 0, "theta must be > 0"),
            (self.nscales >= 1, "nscales must be >= 1"),
            (self.warps >= 1, "warps must be >= 1"),
            (self.epsilon >= 0, "epsilon must be >= 0"),
            (self.inner_iterations >= 1, "inner_iterations must be >= 1"),
            (self.outer_iterations >= 1, "outer_iterations must be >= 1"),
            (0 < self.scale_step < 1, "scale_step must be in (0, 1)"),
            (self.gamma >= 0, "gamma must be >= 0"),
            (self.median_filtering in (0, 1, 3, 5), "median_filtering must be 1 (off), 3 or 5"),
            (self.remap_subpixel >= 0, "remap_subpixel must be >= 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"TVL1Params: {msg}")

    def replace(self, **changes: Any) -> TVL1Params:
        """A copy with some fields changed (``lambda`` is accepted for ``lambda_``)."""
        if "lambda" in changes:
            changes["lambda_"] = changes.pop("lambda")
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(
                f"unknown TV-L1 parameter(s) {sorted(unknown)}; known: {sorted(names)}"
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (keys as the field names)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TVL1Params:
        """Inverse of :meth:`to_dict`; missing keys take OpenCV's defaults."""
        return cls().replace(**dict(d))

    @property
    def steps_per_level(self) -> int:
        """Upper bound of primal-dual steps per pyramid level."""
        return self.warps * self.outer_iterations * self.inner_iterations


#: OpenCV's defaults (``cv2.optflow.DualTVL1OpticalFlow_create()``).
OPENCV_PARAMS = TVL1Params()

#: A cheaper setting for micro-expression-sized motion (sub-pixel to a few pixels): one warp
#: per level, 2 × 15 steps, 3×3 median, fixed step count (no convergence test, no GPU
#: synchronisation). Chosen from a sweep over scales/warps/iterations/median on face crops
#: moved by known fields: its end-point error is 0.78–0.96 × that of OpenCV's defaults at
#: 48, 128 and 224 px, for ~30 primal-dual steps per level instead of up to 1500
#: (``mestudio bench flow`` measures both).
FAST_PARAMS = TVL1Params(
    nscales=5, warps=1, inner_iterations=15, outer_iterations=2, epsilon=0.0, median_filtering=3
)

#: The few-step TV-L1 of the spotting signal's ``"tvl1"`` method
#: (:func:`mestudio.flow.fast_flow`): 3 scales, 1 warp, 10 steps, no median, fixed step count.
SPOTTING_PARAMS = TVL1Params(nscales=3, warps=1, inner_iterations=10, outer_iterations=1,
                             median_filtering=1, epsilon=0.0)
