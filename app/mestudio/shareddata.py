"""Where the third-party test data lives (never part of the repository).

Benchmarks and the synthetic dataset use the public face videos, photos and model files of
the ``shared`` folder: ``$MESTUDIO_TEST_DATA`` when set, else ``shared/`` beside a
development checkout (``<repo>/../shared``). Nothing here downloads anything.
"""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path | None:
    """The ``data/`` folder (``images/``, ``video/``) of the shared test data, or None."""
    env = os.environ.get("MESTUDIO_TEST_DATA")
    for root in ([Path(env)] if env else []) + [_REPO.parent / "shared"]:
        if (root / "data").is_dir():
            return root / "data"
    return None


def use_shared_models() -> None:
    """Point ``$MESTUDIO_MODELS_DIR`` at the shared ``models/`` folder when it is unset and
    YuNet is found nowhere else (benchmarks then measure the full tracker, not Haar)."""
    from mestudio import modelfiles

    data = shared_data_dir()
    models = data.parent / "models" if data else None
    if models is not None and models.is_dir() and not os.environ.get("MESTUDIO_MODELS_DIR") \
            and modelfiles.find_model(modelfiles.YUNET) is None:
        os.environ["MESTUDIO_MODELS_DIR"] = str(models)
