"""The demo source: a real face with natural head motion and planted micro-expressions.

Made at run time from scikit-image's astronaut photo (Eileen Collins, NASA, public domain),
framed to 640×480 and animated by :mod:`mestudio.synth`: a ~20 s clip at 30 fps with small
head motion, illumination drift, sensor noise, a couple of blinks and a micro-expression
every 2–3 s (amplitude 1.5–3 % of the face width). Seekable and deterministic:
``read(i)`` renders frame ``i`` directly (a few milliseconds), and :meth:`DemoSource.truth`
gives the planted events, so the GUI and the tests can check what the spotter found.

``open_source`` spec strings: ``"demo"`` or ``"demo:fps=100,duration=30,seed=2"``
(see :meth:`DemoSource.from_spec`).
"""

from __future__ import annotations

from typing import Any

from mestudio.capture.base import FrameSource
from mestudio.errors import ConfigError, SourceError
from mestudio.types import Frame


class DemoSource(FrameSource):
    """Synthetic demo clip on the astronaut face.

    Args:
        duration_s: clip length (s).
        fps: frames per second (timestamps are ``i / fps``).
        seed: random seed (same seed → identical frames and events).
        size: frame ``(width, height)`` in pixels.
        micro_every_s: mean spacing of the planted micro-expressions (s).
        amplitude: micro-expression amplitude range (fraction of the face width).
        n_blinks: number of blinks.
        loop: iterate forever (frame indices keep counting; images repeat the clip).
    """

    def __init__(self, duration_s: float = 20.0, fps: float = 30.0, seed: int = 0, *,
                 size: tuple[int, int] = (640, 480), micro_every_s: float = 2.5,
                 amplitude: tuple[float, float] = (0.015, 0.03), n_blinks: int = 2,
                 loop: bool = False) -> None:
        super().__init__()
        from mestudio.synth import SynthConfig, default_counts, synthesize_clip

        config = SynthConfig(micro_every_s=micro_every_s, micro_amplitude=amplitude,
                             lead_in_s=1.5)
        counts = default_counts(duration_s, config)
        self.clip = synthesize_clip(None, fps=fps, duration_s=duration_s, seed=seed, size=size,
                                    n_micro=counts["micro"], n_macro=0, n_blinks=n_blinks,
                                    config=config)
        self.name = "demo"
        self.fps = float(fps)
        self.loop = loop
        self.n_frames = None if loop else self.clip.n_frames
        self.size = self.clip.size
        self.seekable = True
        n_micro = sum(e.kind == "micro" for e in self.clip.events)
        self.notes.append(f"synthetic demo: astronaut face, {self.clip.n_frames} frames at "
                          f"{fps:g} fps, {n_micro} planted micro-expressions")

    @classmethod
    def from_spec(cls, spec: str = "demo") -> DemoSource:
        """Build from ``"demo"`` or ``"demo:key=value,..."``.

        Keys: ``fps``, ``duration`` (s), ``seed``, ``size`` (``WxH``), ``every`` (s between
        micro-expressions), ``blinks``, ``loop`` (0/1).
        """
        head, _, rest = spec.partition(":")
        if head.strip().lower() != "demo":
            raise SourceError(f"not a demo spec: {spec!r} (use 'demo' or 'demo:fps=60')")
        kw: dict[str, Any] = {}
        for item in filter(None, (s.strip() for s in rest.split(","))):
            key, eq, value = item.partition("=")
            key = key.strip().lower()
            try:
                if not eq:
                    raise ValueError
                if key == "fps":
                    kw["fps"] = float(value)
                elif key == "duration":
                    kw["duration_s"] = float(value)
                elif key == "seed":
                    kw["seed"] = int(value)
                elif key == "size":
                    w, h = value.lower().split("x")
                    kw["size"] = (int(w), int(h))
                elif key == "every":
                    kw["micro_every_s"] = float(value)
                elif key == "blinks":
                    kw["n_blinks"] = int(value)
                elif key == "loop":
                    kw["loop"] = value.strip() not in ("0", "false", "no")
                else:
                    raise KeyError(key)
            except KeyError:
                raise ConfigError(f"unknown demo option {key!r} in {spec!r}; known: fps, "
                                  "duration, seed, size, every, blinks, loop") from None
            except ValueError:
                raise ConfigError(f"bad demo option {item!r} in {spec!r} "
                                  "(e.g. 'demo:fps=60,duration=30,size=640x480')") from None
        return cls(**kw)

    def _read(self, i: int) -> Frame:
        n = self.clip.n_frames
        return Frame(i, i / self.clip.fps, self.clip.frame(i % n if self.loop else i))

    def truth(self) -> dict[str, Any]:
        """The planted events and clip facts (the ``truth.json`` content, see
        :meth:`mestudio.synth.SynthClip.truth`)."""
        return self.clip.truth()

    @property
    def events(self) -> list:
        """The planted :class:`~mestudio.synth.PlantedEvent` list, sorted by onset."""
        return list(self.clip.events)
