"""No module imports a layer above its own, nor what the design forbids it.

Layers, bottom to top: the core (every module outside the four below: capture, face,
spotting, pipeline, analysis, inference, training, ...), ``gui/``, ``bench/``,
``commands/``, and the entry points ``cli.py`` and ``__main__.py``. A module may import its
own layer and those below; Qt (``PySide6``, ``shiboken6``, ``pyqtgraph``) is imported only in
``gui/`` and by ``bench/live.py``, which drives the live window. Every ``import`` statement
counts, at module level or inside a function, and so does ``importlib.import_module`` with a
literal (or f-string) module name. :data:`MUST_NOT_IMPORT` adds the design's per-module
rules (no torch in capture or spotting, no onnxruntime in nets/, nothing of the package in
types.py), the runtime's (no torch in anything the application runs) and the order inside the
core: the stages (:data:`STAGES`) never import the engine (``engine/``, ``batch``).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "app" / "mestudio"

#: Layer rank of each upper layer (the core is 0).
RANKS = {"gui": 1, "bench": 2, "commands": 3, "cli": 4, "__main__": 4}
LAYER_NAMES = {0: "core", 1: "gui", 2: "bench", 3: "commands", 4: "cli"}
QT_MODULES = ("PySide6", "shiboken6", "pyqtgraph")
#: Modules outside gui/ allowed to import Qt.
QT_ALLOWED = {"mestudio.bench.live"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _rank(module: str) -> int:
    """Layer rank of a ``mestudio`` module (or package) name."""
    parts = module.split(".")
    if len(parts) < 2:
        return 0  # the mestudio package itself
    return RANKS.get(parts[1], 0)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute name a ``from ... import`` refers to."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _literal_prefix(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0],
                                                                       ast.Constant):
        return str(node.values[0].value)
    return None


def _imports(path: Path) -> list[tuple[int, list[str]]]:
    """``(line, modules)`` of every import in ``path``: for ``from X import a, b`` the
    modules are ``X``, ``X.a`` and ``X.b`` (so ``from mestudio import gui`` counts as
    ``mestudio.gui``)."""
    module = _module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, [alias.name]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module, is_package)
            found.append((node.lineno, [base, *(f"{base}.{alias.name}" for alias in node.names
                                                if alias.name != "*")]))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__"):
                prefix = _literal_prefix(node.args[0])
                if prefix:
                    found.append((node.lineno, [prefix.rstrip(".")]))
    return found


#: The design's "must not import" rules (ARCHITECTURE.md), plus the runtime's: what runs in
#: the application (live, review, kiosk, analyze, batch and Ray workers) never imports torch,
#: which is a training-side extra (model inputs come from the ONNX graph of flow/graph.py).
#: Keys are packages or modules (a key covers its submodules); values are top-level names.
MUST_NOT_IMPORT: dict[str, tuple[str, ...]] = {
    "mestudio.types": ("mestudio",),
    "mestudio.capture": ("torch",),
    "mestudio.spotting": ("torch",),
    "mestudio.nets": ("onnxruntime",),
    "mestudio.face": ("torch",),
    "mestudio.flow.graph": ("torch",),
    "mestudio.flow.fast": ("torch",),
    "mestudio.flow.tvl1_params": ("torch",),
    "mestudio.engine.recognition": ("torch",),
    "mestudio.engine.pipeline": ("torch",),
    "mestudio.engine.analysis": ("torch",),
    "mestudio.engine.live": ("torch",),
    "mestudio.batch": ("torch",),
    "mestudio.engine.overlays": ("torch",),
    "mestudio.engine.event_details": ("torch",),
    "mestudio.analytics": ("torch",),
    "mestudio.gui": ("torch",),
}


#: The stages sit below the engine (``engine/``: pipeline, recognition, live session, whole
#: recordings, kiosk session, video jobs) and the batch runner: a stage never imports them.
STAGES = ("capture", "face", "flow", "spotting", "preprocess", "nets", "inference", "training",
          "synth", "analytics")
ENGINE = ("mestudio.engine", "mestudio.batch")
for _stage in STAGES:
    MUST_NOT_IMPORT[f"mestudio.{_stage}"] = (*MUST_NOT_IMPORT.get(f"mestudio.{_stage}", ()),
                                             *ENGINE)


def _forbidden(module: str, name: str) -> str | None:
    """Why ``module`` must not import ``name`` (a banned top-level package, or a banned
    package of mestudio and its modules), else None."""
    for owner, banned in MUST_NOT_IMPORT.items():
        if module != owner and not module.startswith(owner + "."):
            continue
        for ban in banned:
            if "." in ban:
                hit = name == ban or name.startswith(ban + ".")
            else:
                hit = name.split(".")[0] == ban and not (owner == "mestudio.types"
                                                          and name == "__future__")
            if hit:
                return f"{module} imports {name} ({owner} must not import {ban})"
    return None


def _violation(module: str, name: str) -> str | None:
    bad = _forbidden(module, name)
    if bad is not None:
        return bad
    own = _rank(module)
    top = name.split(".")[0]
    if top in QT_MODULES and own != RANKS["gui"] and module not in QT_ALLOWED:
        return f"{module} imports {name} (Qt only in gui/)"
    if top == "mestudio" and _rank(name) > own:
        return (f"{module} ({LAYER_NAMES[own]}) imports {name} "
                f"({LAYER_NAMES[_rank(name)]}, a layer above)")
    return None


def _violations(path: Path) -> list[str]:
    """One line per import statement of ``path`` that reaches a layer above."""
    module = _module_name(path)
    out = []
    for line, names in _imports(path):
        for name in names:
            bad = _violation(module, name)
            if bad is not None:
                out.append(f"{path.relative_to(PACKAGE.parent.parent)}:{line}: {bad}")
                break
    return out


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_the_package_is_found() -> None:
    names = {_module_name(p) for p in MODULES}
    assert {"mestudio.engine.pipeline", "mestudio.engine.analysis", "mestudio.gui.review_window",
            "mestudio.commands.analyze", "mestudio.cli"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_no_module_imports_a_layer_above_it(path: Path) -> None:
    assert _violations(path) == []


def test_the_check_sees_upward_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker itself: a core module importing the GUI (in a function, relatively and
    by name), a GUI module importing a command, and Qt in the core are all caught."""
    pkg = tmp_path / "mestudio"
    (pkg / "gui").mkdir(parents=True)
    (pkg / "flow").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "gui" / "__init__.py").write_text("")
    (pkg / "flow" / "__init__.py").write_text("")
    core = pkg / "flow" / "bad.py"
    core.write_text("import importlib\n"
                    "def f():\n"
                    "    from ..gui import window\n"
                    "    from mestudio import commands\n"
                    "    import PySide6.QtCore\n"
                    "    return importlib.import_module(f'mestudio.bench.{window}')\n")
    gui = pkg / "gui" / "bad.py"
    gui.write_text("from mestudio.commands.analyze import run\nfrom PySide6 import QtCore\n"
                   "from mestudio.engine.pipeline import Pipeline\nfrom . import widgets\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    core_found = _violations(core)
    assert len(core_found) == 4, core_found
    assert any("imports mestudio.gui (gui" in v for v in core_found)
    assert any("mestudio.commands" in v for v in core_found)
    assert any("PySide6" in v for v in core_found)
    assert any("mestudio.bench" in v for v in core_found)
    gui_found = _violations(gui)
    assert len(gui_found) == 1 and "mestudio.commands.analyze" in gui_found[0]


def test_the_check_sees_forbidden_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch in the spotting or the runtime, onnxruntime in nets/, the package in types.py:
    each is named with its line."""
    pkg = tmp_path / "mestudio"
    for sub in ("spotting", "nets", "engine"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    files = {
        pkg / "spotting" / "bad.py": "def f():\n    import torch.nn\n",
        pkg / "nets" / "bad.py": "import numpy\nfrom onnxruntime import InferenceSession\n",
        pkg / "types.py": "from __future__ import annotations\nfrom mestudio.errors import X\n",
        pkg / "engine" / "pipeline.py": "import torch\n",
        pkg / "spotting" / "up.py": "def f():\n    from mestudio.engine.analysis import x\n",
    }
    for path, text in files.items():
        path.write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    found = {p.name if p.parent == pkg else f"{p.parent.name}/{p.name}": _violations(p)
             for p in files}
    assert len(found["spotting/bad.py"]) == 1
    assert found["spotting/bad.py"][0].endswith(
        "mestudio/spotting/bad.py:2: mestudio.spotting.bad imports torch.nn "
        "(mestudio.spotting must not import torch)")
    assert len(found["nets/bad.py"]) == 1 and ":2:" in found["nets/bad.py"][0] \
        and "must not import onnxruntime" in found["nets/bad.py"][0]
    assert len(found["types.py"]) == 1 and "mestudio.errors" in found["types.py"][0]
    assert len(found["engine/pipeline.py"]) == 1 \
        and "must not import torch" in found["engine/pipeline.py"][0]
    assert len(found["spotting/up.py"]) == 1 and found["spotting/up.py"][0].endswith(
        "mestudio/spotting/up.py:2: mestudio.spotting.up imports mestudio.engine.analysis "
        "(mestudio.spotting must not import mestudio.engine)")


def _import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (every import statement, in functions
    too; ``from X import name`` counts as importing ``X.name`` when that is a module)."""
    modules = {_module_name(p) for p in MODULES}

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for path in MODULES:
        module = _module_name(path)
        for _line, names in _imports(path):
            for name in names:
                target = owner(name) if name.startswith("mestudio") else None
                if target is not None and target != module:
                    graph[module].add(target)
    return graph


def _loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def test_no_import_loop_between_packages() -> None:
    """Modules of one package may register each other (a package and its registry); a loop
    that runs through two packages (or top-level modules) is a layering error."""
    crossing = [loop for loop in _loops(_import_graph())
                if len({_package(m) for m in loop}) > 1]
    assert crossing == [], "import loops across packages: " + "; ".join(
        " <-> ".join(loop) for loop in crossing)


def test_the_loop_check_finds_a_loop() -> None:
    graph = {"mestudio.a.x": {"mestudio.b.y"}, "mestudio.b.y": {"mestudio.c"},
             "mestudio.c": {"mestudio.a.x"}, "mestudio.d": {"mestudio.a.x"}}
    assert _loops(graph) == [["mestudio.a.x", "mestudio.b.y", "mestudio.c"]]
