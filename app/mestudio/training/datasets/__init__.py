"""Loaders of the micro-expression datasets as their releases are distributed.

>>> from mestudio.training.datasets import get_dataset
>>> ds = get_dataset("casme2")                    # doctest: +SKIP
>>> samples = ds.load("/data/CASME2", mapping="5class")   # doctest: +SKIP
>>> report = ds.check("/data/CASME2"); print(report.to_text())   # doctest: +SKIP

Names (:data:`DATASETS`): ``casme2``, ``samm``, ``casme``, ``casme_sq`` (CAS(ME)²), ``mmew``,
``smic`` (HS), ``smic-vis``, ``smic-nir``, ``megc2019`` (composite), and the long-video
releases for spotting (:mod:`.longvideo`): ``casme_sq_lv`` (CAS(ME)² long videos),
``samm_lv`` (SAMM Long Videos), ``casme3`` (CAS(ME)³ part A). Aliases such as
``casme-ii``, ``cas(me)^2``, ``smic-hs``, ``composite``, ``sammlv``, ``cas(me)^3`` are
accepted.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from mestudio.errors import DatasetError
from mestudio.training.datasets.base import (
    MAPPINGS,
    THREE_CLASSES,
    DatasetReport,
    Issue,
    MEDataset,
    Sample,
    parse_action_units,
)
from mestudio.training.datasets.casme import Casme
from mestudio.training.datasets.casme2 import Casme2
from mestudio.training.datasets.casme3 import Casme3
from mestudio.training.datasets.casme_sq import CasmeSq
from mestudio.training.datasets.casme_sq_lv import CasmeSqLv
from mestudio.training.datasets.fixes import FIXES, AnnotationFix
from mestudio.training.datasets.longvideo import LongVideo, LongVideoDataset, SpottingReport
from mestudio.training.datasets.megc2019 import Megc2019
from mestudio.training.datasets.mmew import Mmew
from mestudio.training.datasets.samm import Samm
from mestudio.training.datasets.samm_lv import SammLv
from mestudio.training.datasets.smic import Smic

DATASETS: dict[str, Callable[..., MEDataset]] = {
    "casme2": Casme2,
    "samm": Samm,
    "casme": Casme,
    "casme_sq": CasmeSq,
    "mmew": Mmew,
    "smic": functools.partial(Smic, "HS"),
    "smic-vis": functools.partial(Smic, "VIS"),
    "smic-nir": functools.partial(Smic, "NIR"),
    "megc2019": Megc2019,
    "casme_sq_lv": CasmeSqLv,
    "samm_lv": SammLv,
    "casme3": Casme3,
}
"""Registry name -> factory ``(**kwargs) -> MEDataset`` (kwargs: ``layout``, ``sheet``)."""

ALIASES: dict[str, str] = {
    "casmeii": "casme2",
    "casme1": "casme",
    "casmei": "casme",
    "casmesq": "casme_sq",
    "casme2sq": "casme_sq",
    "casme^2": "casme_sq",
    "cas(me)2": "casme_sq",
    "cas(me)^2": "casme_sq",
    "smichs": "smic",
    "smicvis": "smic-vis",
    "smicnir": "smic-nir",
    "megc": "megc2019",
    "composite": "megc2019",
    "megc2019composite": "megc2019",
    "megc2019-composite": "megc2019",
    "casmesqlv": "casme_sq_lv",
    "casmesqlong": "casme_sq_lv",
    "cas(me)^2-lv": "casme_sq_lv",
    "cas(me)^2lv": "casme_sq_lv",
    "cas(me)2-lv": "casme_sq_lv",
    "casme^2-lv": "casme_sq_lv",
    "sammlv": "samm_lv",
    "sammlongvideos": "samm_lv",
    "samm-longvideos": "samm_lv",
    "cas(me)^3": "casme3",
    "cas(me)3": "casme3",
    "casme^3": "casme3",
    "casme3a": "casme3",
    "casme3-parta": "casme3",
}


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.strip().lower())


def dataset_names() -> list[str]:
    """Registry names, in registry order."""
    return list(DATASETS)


def register_dataset(name: str, factory: Callable[..., MEDataset]) -> None:
    """Add a dataset to the registry (e.g. the training module's synthetic dataset)."""
    DATASETS[name] = factory


def get_dataset(name: str, **kwargs: Any) -> MEDataset:
    """A loader by registry name or alias.

    Args:
        name: e.g. ``"casme2"``, ``"CASME-II"``, ``"cas(me)^2"``, ``"smic-vis"``.
        **kwargs: loader options: ``layout`` (``"auto"``, ``"raw"``, ``"selected"``,
            ``"cropped"``), ``sheet`` (explicit annotation file).

    Raises:
        DatasetError: unknown name (the message lists the known ones).
    """
    if name in DATASETS:
        return DATASETS[name](**kwargs)
    wanted = _key(name)
    for registered in DATASETS:
        if _key(registered) == wanted:
            return DATASETS[registered](**kwargs)
    for alias, registered in ALIASES.items():
        if _key(alias) == wanted or alias == name.strip().lower():
            return DATASETS[registered](**kwargs)
    raise DatasetError(f"unknown dataset {name!r}: use one of {', '.join(DATASETS)}")


__all__ = [
    "ALIASES",
    "DATASETS",
    "FIXES",
    "MAPPINGS",
    "THREE_CLASSES",
    "AnnotationFix",
    "Casme",
    "Casme2",
    "Casme3",
    "CasmeSq",
    "CasmeSqLv",
    "DatasetReport",
    "Issue",
    "LongVideo",
    "LongVideoDataset",
    "MEDataset",
    "Megc2019",
    "Mmew",
    "Samm",
    "SammLv",
    "Sample",
    "Smic",
    "SpottingReport",
    "dataset_names",
    "get_dataset",
    "parse_action_units",
    "register_dataset",
]
