"""Command-line helpers shared by ``mestudio data prepare`` and ``mestudio train``.

Dataset arguments (``--dataset --root --mapping --min-class-samples --layout --sheet`` and
the synthetic-dataset options; ``--mapping --min-class-samples`` also for ``evaluate``),
feature arguments (``--cache --align --align-size --preprocess --prepare-workers``), the
``--model ARCH`` argument whose help lists the networks of :mod:`mestudio.nets` (made only
when shown), loading the samples and building the feature spec. Heavy libraries (torch,
cv2) are imported inside the functions.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``<user cache>/mestudio/features``."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mestudio", appauthor=False)) / "features"


def add_dataset_arguments(parser: argparse.ArgumentParser, *, root_required: bool = False) -> None:
    """``--dataset --root --mapping --layout --sheet`` and the synthetic-dataset options."""
    from mestudio.training.datasets import DATASETS

    parser.add_argument("--dataset", required=True, metavar="NAME",
                        help=f"dataset: {', '.join(DATASETS)}")
    parser.add_argument("--root", type=Path, default=None, required=root_required,
                        metavar="PATH",
                        help="folder holding the release as distributed (synthetic: where the "
                             "synthetic release is or will be rendered; default: the user cache)")
    add_class_set_arguments(parser, "5class where the dataset has one, else native")
    parser.add_argument("--layout", default="auto", choices=("auto", "raw", "selected", "cropped"),
                        help="frame layout of the release (default: the first present)")
    parser.add_argument("--sheet", type=Path, default=None, metavar="FILE",
                        help="annotation file, when not found under --root")
    syn = parser.add_argument_group("synthetic dataset (--dataset synthetic)")
    syn.add_argument("--synth-per-class", type=int, default=None, metavar="N",
                     help="samples per identity and class (default 6)")
    syn.add_argument("--synth-identities", type=int, default=None, metavar="N",
                     help="use at most N face identities (default: all available)")
    syn.add_argument("--synth-seed", type=int, default=None, metavar="S",
                     help="seed of the rendering (default 0)")
    syn.add_argument("--synth-faces", default=None, metavar="DIR",
                     help="folder with images/ and video/ of face photos and videos "
                          "(default: the shared test data when present, else scikit-image)")


def add_class_set_arguments(parser: argparse.ArgumentParser, auto: str) -> None:
    """``--mapping MAP|FILE --min-class-samples N`` (``train``, ``data prepare``,
    ``evaluate``): read with :meth:`~mestudio.training.datasets.base.MEDataset.resolve_mapping`
    and :func:`~mestudio.training.datasets.base.drop_small_classes`; ``auto`` says what the
    default is."""
    parser.add_argument("--mapping", default="auto", metavar="MAP|FILE",
                        help=f"class set: native, 5class, 3class (default: {auto}), a shipped "
                             "mapping file (casme2-5class, samm-5class, megc2019-3class, "
                             "m3enet-table1-<dataset>) or your own TOML file: classes = [...] "
                             "and a [labels] table native label = class ([labels.<dataset>] "
                             "tables per dataset)")
    parser.add_argument("--min-class-samples", type=int, default=0, metavar="N",
                        help="leave out classes with fewer than N samples after the mapping, "
                             "with their samples (the report lists them; default 0: keep all)")


def add_alignment_arguments(parser: argparse.ArgumentParser) -> None:
    """``--cache --align --align-size``: where model inputs are cached and how frames become
    aligned face crops (``train``, ``data prepare``, ``evaluate``)."""
    parser.add_argument("--cache", type=Path, default=None, metavar="DIR",
                        help="feature cache folder (default: <user cache>/mestudio/features, "
                             "shared by train, data prepare and evaluate)")
    parser.add_argument("--align", default="tracker", choices=("tracker", "keyframes", "none"),
                        help="how frames become aligned face crops: the live face tracker run "
                             "over the frames (default), preprocess.align_keyframes, or none "
                             "(frames are already aligned crops, e.g. CASME II Cropped)")
    parser.add_argument("--align-size", type=int, default=128, metavar="PX",
                        help="side of the aligned crops (the live tracker's, default 128)")


def add_feature_arguments(parser: argparse.ArgumentParser) -> None:
    """``--cache --align --align-size --preprocess --prepare-workers``."""
    add_alignment_arguments(parser)
    parser.add_argument("--preprocess", action="append", default=[], metavar="KEY=VALUE",
                        help="override a PreprocessConfig field (repeatable), e.g. input_size=48")
    parser.add_argument("--prepare-workers", type=int, default=2, metavar="N",
                        help="processes computing features (default 2)")


def add_ray_arguments(parser: argparse.ArgumentParser, *, folds: bool = False) -> None:
    """``--ray [ADDRESS]`` (:func:`mestudio.raysupport.add_ray_argument`) and, for
    ``train`` (``folds``), ``--gpus-per-fold G``."""
    from mestudio.raysupport import add_ray_argument

    if folds:
        add_ray_argument(parser, "prepare the features and train the folds x seeds")
        parser.add_argument("--gpus-per-fold", type=float, default=0.0, metavar="G",
                            help="with --ray: GPUs each fold task requests when the cluster "
                                 "has GPUs (0.5: two folds share one; default 0: CPU)")
    else:
        add_ray_argument(parser, "compute the features")


def ray_folders(*paths: Path | None) -> list[Path]:
    """Folders a Ray job uses, absolute (relative ones from the working folder here: every
    node must see them at that path); None left out."""
    return [Path(p).expanduser().resolve() for p in paths if p is not None]


def synthetic_settings(args: argparse.Namespace) -> Any:
    from mestudio.training.synthetic import SyntheticSettings

    s = SyntheticSettings()
    if getattr(args, "synth_per_class", None) is not None:
        s.per_class = int(args.synth_per_class)
    if getattr(args, "synth_identities", None) is not None:
        s.max_identities = int(args.synth_identities)
    if getattr(args, "synth_seed", None) is not None:
        s.seed = int(args.synth_seed)
    if getattr(args, "synth_faces", None) is not None:
        s.faces_dir = str(args.synth_faces)
    return s


def resolve_root(args: argparse.Namespace, dataset: Any) -> Path:
    """``--root``; for the synthetic dataset a user-cache folder named by its settings."""
    from mestudio.errors import DatasetError

    if args.root is not None:
        return Path(args.root).expanduser()
    if dataset.name == "synthetic":
        import hashlib
        import json

        from platformdirs import user_cache_dir

        s = synthetic_settings(args).to_dict()
        h = hashlib.sha256(json.dumps(s, sort_keys=True).encode()).hexdigest()[:10]
        return Path(user_cache_dir("mestudio", appauthor=False)) / f"synthetic-{h}"
    raise DatasetError(f"--root is required for {dataset.title}: the folder holding the release")


@dataclass
class ClassSet:
    """The samples of a run and its class set (:func:`load_class_set`).

    Attributes:
        dataset: the loader; root: the release folder.
        samples: the samples kept (mapped, small classes dropped).
        classes: the classes in the model's output order.
        mapping: the :class:`~mestudio.training.datasets.base.ClassMapping` (built-in
            mappings included) before small classes were dropped.
        min_class_samples: ``--min-class-samples``.
        dropped: class -> samples, the classes dropped for having too few.
    """

    dataset: Any
    samples: list[Any]
    classes: list[str]
    mapping: Any
    root: Path
    min_class_samples: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def mapping_name(self) -> str:
        return str(self.mapping.name)

    def describe(self) -> dict[str, Any]:
        """What reports state about the class set."""
        m = self.mapping
        return {"mapping": m.name, "mapping_source": m.source, "mapping_sha256": m.sha256,
                "mapping_classes": list(m.classes), "classes": list(self.classes),
                "min_class_samples": self.min_class_samples, "dropped_classes": dict(self.dropped),
                "mapping_description": m.description}


def load_class_set(args: argparse.Namespace) -> ClassSet:
    """The dataset, its samples under ``--mapping`` and the class set after
    ``--min-class-samples``.

    Raises:
        DatasetError: unknown dataset, unreadable release, unknown mapping, or fewer than two
            classes left.
    """
    from mestudio.training.datasets.base import drop_small_classes

    dataset, samples, mapping, root = _load(args)
    m = dataset.mapping_object(mapping)
    classes = list(dataset.classes(mapping))
    minimum = int(getattr(args, "min_class_samples", 0) or 0)
    dropped: dict[str, int] = {}
    if minimum > 0:
        samples, classes, dropped = drop_small_classes(samples, classes, minimum)
        if dropped:
            logger.warning("--min-class-samples %d: left out %s", minimum,
                           ", ".join(f"{c} ({n} samples)" for c, n in dropped.items()))
    return ClassSet(dataset, samples, classes, m, root, minimum, dropped)


def load_samples(args: argparse.Namespace) -> tuple[Any, list[Any], str, Path]:
    """``(dataset, samples, mapping name, root)`` from the dataset arguments (classes with
    fewer than ``--min-class-samples`` samples left out: :func:`load_class_set`).

    Raises:
        DatasetError: unknown dataset, unreadable release, unknown mapping.
    """
    cs = load_class_set(args)
    return cs.dataset, cs.samples, cs.mapping_name, cs.root


def _load(args: argparse.Namespace) -> tuple[Any, list[Any], Any, Path]:
    """``(dataset, samples, mapping (a name or a ClassMapping), root)``."""
    from mestudio.training.datasets import get_dataset

    kwargs: dict[str, Any] = {"layout": args.layout}
    if args.sheet is not None:
        kwargs["sheet"] = args.sheet
    if args.dataset.strip().lower() == "synthetic":
        explicit = any(getattr(args, k, None) is not None for k in
                       ("synth_per_class", "synth_identities", "synth_seed", "synth_faces"))
        if explicit:
            kwargs["settings"] = synthetic_settings(args)
        kwargs["workers"] = max(1, int(getattr(args, "prepare_workers", 2) or 1))
        kwargs["progress"] = not getattr(args, "no_progress", False)
    dataset = get_dataset(args.dataset, **kwargs)
    root = resolve_root(args, dataset)
    if dataset.name == "synthetic":
        root.mkdir(parents=True, exist_ok=True)
    mapping = dataset.resolve_mapping(args.mapping)
    samples = dataset.load(root, mapping=mapping)
    return dataset, samples, mapping, root


def invocation(args: argparse.Namespace | None = None) -> str:
    """The command line of this run, for reports: ``mestudio ...`` as typed when mestudio
    was started as a program; else (called from Python) the command rebuilt from the
    parsed arguments ``args`` (every option with its value)."""
    argv0 = Path(sys.argv[0]) if sys.argv else Path()
    prog = argv0.name
    if prog in ("mestudio", "mestudio.exe") or (prog == "__main__.py"
                                                and argv0.parent.name == "mestudio"):
        return shlex.join(["mestudio", *sys.argv[1:]])
    if args is None:
        return ""
    parts = ["mestudio", str(getattr(args, "command", "") or "train")]
    for key, value in sorted(vars(args).items()):
        if key in ("command", "func", "handler") or callable(value) or value is None \
                or value is False or value == []:
            continue
        flag = "--" + key.replace("_", "-")
        if key == "overrides":
            for v in value:
                parts += ["--set", str(v)]
        elif value is True:
            parts.append(flag)
        elif isinstance(value, list):
            for v in value:
                parts += [flag, str(v)]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts) + "  # rebuilt from the parsed arguments"


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["input_size=48", "color=true"]`` -> typed values (JSON literals where they parse)."""
    import json

    from mestudio.errors import ConfigError

    out: dict[str, Any] = {}
    for text in items:
        if "=" not in text:
            raise ConfigError(f"--preprocess expects KEY=VALUE, got {text!r}")
        key, value = (t.strip() for t in text.split("=", 1))
        low = value.lower()
        if low in ("true", "false"):
            out[key] = low == "true"
        else:
            try:
                out[key] = json.loads(value)
            except json.JSONDecodeError:
                out[key] = value
    return out


def feature_spec(args: argparse.Namespace, kind: str, *, evm: str = "") -> Any:
    """The :class:`~mestudio.training.features.FeatureSpec` the arguments describe.

    ``evm``: ``mestudio train``'s ``--set evm=...`` (canonical text form, ``""`` = off),
    the preprocessing field ``evm``; a ``--preprocess evm=...`` that says otherwise is an
    error.
    """
    import dataclasses

    from mestudio.errors import ConfigError
    from mestudio.preprocess import evm_text
    from mestudio.training.features import make_spec

    overrides = parse_overrides(list(getattr(args, "preprocess", []) or []))
    if evm:
        given = evm_text(overrides.get("evm"))
        if "evm" in overrides and given != evm:
            raise ConfigError(f"--set evm={evm} and --preprocess evm={given or 'off'} differ: "
                              "give one of them")
        overrides["evm"] = evm
    try:
        return make_spec(kind, align=args.align, align_size=args.align_size, **overrides)
    except (TypeError, ValueError) as exc:
        from mestudio import preprocess

        names = ", ".join(f.name for f in dataclasses.fields(preprocess.PreprocessConfig))
        raise ConfigError(f"--preprocess: {exc} (fields: {names})") from exc


def model_kind(arch: str) -> str:
    """The input kind (:data:`mestudio.preprocess.INPUT_KINDS`) of a registry architecture
    name, e.g. ``keyframes`` or ``clip``.

    Raises:
        mestudio.errors.ConfigError: an unknown architecture.
    """
    from mestudio.errors import ConfigError
    from mestudio.nets import list_models, model_input_kind

    try:
        return model_input_kind(arch)
    except ValueError:
        raise ConfigError(f"unknown model {arch!r}: use one of {', '.join(list_models())}"
                          ) from None


def models_help() -> str:
    """``name: description [input kind]`` of every registered network, for help texts
    (imports torch: use it through :func:`set_models_help`)."""
    from mestudio.nets import describe_model, list_models, model_input_kind

    return "; ".join(f"{name}: {describe_model(name)} [{model_input_kind(name)} inputs]"
                     for name in list_models())


class _LazyText:
    """Text made on first use (``str()``), then kept."""

    def __init__(self, make: Callable[[], str]) -> None:
        self._make = make
        self._text: str | None = None

    def __str__(self) -> str:
        if self._text is None:
            self._text = self._make()
        return self._text


def set_models_help(action: argparse.Action, text: str) -> argparse.Action:
    """Give ``action`` (a ``--model``/``--arch`` argument) the help ``text``, in which
    ``%(models)s`` becomes the registered networks with their descriptions
    (:func:`models_help`).

    The list is made only when the help is shown: listing the networks imports torch, and
    ``mestudio --help`` and every other command must stay fast.
    """
    action.help = text
    vars(action)["models"] = _LazyText(models_help)  # a format key of the help text
    return action


def add_model_argument(parser: argparse.ArgumentParser, what: str,
                       default: str = "m3enet") -> argparse.Action:
    """``--model ARCH``: a registry architecture; the help lists them
    (:func:`set_models_help`)."""
    return set_models_help(parser.add_argument("--model", default=default, metavar="ARCH"),
                           f"{what} (default %(default)s): %(models)s")
