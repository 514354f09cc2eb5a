"""The model registry: networks register with :func:`register`; :func:`create_model`,
:func:`list_models`, :func:`describe_model` and :func:`model_input_kind` look them up.

A network module of this package registers its class with a decorator::

    @register("m3enet", input_kind="keyframes", description="five-stream M3ENet ...")
    class M3ENet(MERNet): ...

The decorator sets the class's ``arch``, ``input_kind`` and ``input_names`` (the names come
from the kind's :class:`mestudio.preprocess.InputKind` spec, which must be registered
first). The lookups import every module of :mod:`mestudio.nets` once, on first use, so a
network is available as soon as its module is in the package; nothing else lists it.
Names are matched case-insensitively with ``-`` and ``_`` alike (``IM3DR-MFER`` is
``im3dr_mfer``), and a network may register extra ``aliases``.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from mestudio.nets.blocks import MERNet

M = TypeVar("M", bound=type[MERNet])


@dataclass(frozen=True)
class ModelEntry:
    """One registered network.

    Attributes:
        name: the canonical name (``create_model``'s, the checkpoint's ``arch``).
        factory: the class; ``factory(num_classes, **kw)`` builds the network.
        input_kind: the :mod:`mestudio.preprocess` input kind it takes.
        description: one line for ``--help`` texts and reports.
        aliases: other accepted names.
    """

    name: str
    factory: type[MERNet]
    input_kind: str
    description: str
    aliases: tuple[str, ...] = ()


_REGISTRY: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}
_loaded = False
_load_lock = threading.RLock()
#: Modules of the package that hold no network (not imported by the lookups).
_NOT_NETWORKS = frozenset({"registry"})


def _key(name: str) -> str:
    return str(name).strip().lower().replace("-", "_")


def register(name: str, *, input_kind: str, description: str,
             aliases: tuple[str, ...] = ()) -> Callable[[M], M]:
    """Class decorator adding a :class:`~mestudio.nets.blocks.MERNet` subclass to the
    registry under ``name``.

    Args:
        name: the canonical name (lower case, ``_`` between words).
        input_kind: the input kind (:data:`mestudio.preprocess.INPUT_KINDS`).
        description: one line.
        aliases: other names accepted by the lookups.

    Raises:
        ValueError: an unknown input kind, a class that declares another kind or other
            input names, or a name already taken by another class.
    """
    from mestudio.preprocess import input_kind as kind_spec

    spec = kind_spec(input_kind)
    key = _key(name)

    def decorate(cls: M) -> M:
        declared = vars(cls)
        if declared.get("input_kind", input_kind) != input_kind:
            raise ValueError(f"{cls.__name__} declares input kind {declared['input_kind']!r} "
                             f"but registers as {input_kind!r}")
        if tuple(declared.get("input_names", spec.input_names)) != spec.input_names:
            raise ValueError(f"{cls.__name__} declares inputs {declared['input_names']} but "
                             f"{input_kind} models take {spec.input_names}")
        for taken in (key, *map(_key, aliases)):
            owner = _ALIASES.get(taken, taken)
            entry = _REGISTRY.get(owner)
            if entry is not None and (entry.factory.__module__, entry.factory.__qualname__) \
                    != (cls.__module__, cls.__qualname__):  # the same class again: a reload
                raise ValueError(f"model name {taken!r} is already registered by "
                                 f"{entry.factory.__name__}")
        cls.arch = key
        cls.input_kind = input_kind
        cls.input_names = spec.input_names
        _REGISTRY[key] = ModelEntry(key, cls, input_kind, description,
                                    tuple(_key(a) for a in aliases))
        for alias in aliases:
            _ALIASES[_key(alias)] = key
        return cls

    return decorate


def unregister(name: str) -> None:
    """Remove the network ``name`` and its aliases (tests, plug-ins); unknown names are
    ignored."""
    entry = _REGISTRY.pop(_key(name), None)
    if entry is not None:
        for alias in entry.aliases:
            _ALIASES.pop(alias, None)


def _load_networks() -> None:
    """Import every module of :mod:`mestudio.nets` (their decorators register), once."""
    global _loaded
    if _loaded:
        return
    with _load_lock:
        if _loaded:
            return
        import mestudio.nets as package

        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_") and info.name not in _NOT_NETWORKS:
                importlib.import_module(f"{package.__name__}.{info.name}")
        _loaded = True


def _entry(name: str) -> ModelEntry:
    _load_networks()
    key = _key(name)
    entry = _REGISTRY.get(_ALIASES.get(key, key))
    if entry is None:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(list_models())}")
    return entry


def list_models() -> list[str]:
    """Names accepted by :func:`create_model` (canonical names, sorted)."""
    _load_networks()
    return sorted(_REGISTRY)


def describe_model(name: str) -> str:
    """One line describing architecture ``name``.

    Raises:
        ValueError: an unknown name.
    """
    return _entry(name).description


def model_input_kind(name: str) -> str:
    """The input kind architecture ``name`` takes (without building it).

    Raises:
        ValueError: an unknown name.
    """
    return _entry(name).input_kind


def create_model(name: str, num_classes: int, **kw: Any) -> MERNet:
    """Build architecture ``name`` with ``num_classes`` outputs (random weights).

    Keyword arguments go to the model's constructor (e.g. ``in_channels=3`` for colour
    frames, ``input_size=48``); unknown ones raise ``TypeError``. The model exposes
    ``input_kind``, ``input_names``, ``stream_names``, ``forward_with_activations`` and
    ``config()`` (the keyword arguments that rebuild it).

    Raises:
        ValueError: an unknown name.
    """
    return _entry(name).factory(num_classes, **kw)
