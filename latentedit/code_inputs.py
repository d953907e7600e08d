"""The library files a Python file runs, read from its import statements (for the workflow's code inputs).

Snakemake reruns a job when its script changes, but not when a library module the script imports changes. The
workflow therefore lists, as inputs of every rule that runs a script, the files of every ``latentedit`` module the
script reaches: the modules it imports, transitively, with the ``__init__.py`` of every package on the way (Python
executes those too). Imports are read with :mod:`ast`, so nothing is imported and no torch is loaded at parse time.

Every import statement of a file counts, wherever it stands — at the top, inside a function (the lazy imports that
keep scikit-learn or insightface out of jobs that never call them), or under ``if TYPE_CHECKING`` — so the set is a
superset of what one run executes: a change to a module a job *may* run reruns it. Imports built at run time
(``importlib.import_module(name)``) are invisible to :mod:`ast`; the edit registry's trainer modules are the one
such case, and the workflow adds them per method (:func:`latentedit.edits.methods.Method.trainer`).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable
from pathlib import Path

PACKAGE = "latentedit"
LIBRARY_ROOT = Path(__file__).resolve().parent  # .../latentedit


def module_file(module: str, root: Path = LIBRARY_ROOT) -> Path | None:
    """The file of ``latentedit.a.b`` (``a/b.py`` or ``a/b/__init__.py`` under ``root``), None if neither exists."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _packages_of(module: str) -> list[str]:
    """``latentedit.a.b`` → [``latentedit``, ``latentedit.a``]: the packages whose ``__init__`` an import runs."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imported_modules(path: Path, root: Path = LIBRARY_ROOT) -> set[str]:
    """The ``latentedit`` modules named by the import statements of the file at ``path`` (not transitively).

    ``from latentedit.x import y`` counts ``latentedit.x.y`` when y is a module, ``latentedit.x`` otherwise;
    relative imports are resolved against the file's own package.
    """
    stat = Path(path).stat()  # the file's size and time stamp key the cache: an edited file is read again
    return set(_imported_modules(str(path), stat.st_mtime_ns, stat.st_size, Path(root)))


@functools.lru_cache(maxsize=None)
def _imported_modules(path: str, mtime_ns: int, size: int, root: Path) -> frozenset[str]:
    """:func:`imported_modules`, read once per version of the file: the workflow asks for the same modules' imports
    for every rule and every training job (591 parses of ≈ 80 files, 2.9 of a dry run's 4.6 s before the cache)."""
    tree = ast.parse(Path(path).read_text(), filename=path)
    here = _module_name(Path(path), root)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x / from ..a import b
                if here is None:
                    continue
                anchor = here.split(".")
                anchor = anchor[: len(anchor) - node.level] if Path(path).name != "__init__.py" else \
                    anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if module_file(sub, root) is not None else base)
    return frozenset(m for m in found if m.split(".")[0] == PACKAGE and module_file(m, root) is not None)


def _module_name(path: Path, root: Path) -> str | None:
    try:
        rel = path.resolve().relative_to(root)
    except ValueError:
        return None
    parts = [PACKAGE, *rel.with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.lru_cache(maxsize=None)
def _reach(module: str, root: Path) -> frozenset[str]:
    """Every module that importing ``module`` may execute: itself, its packages, and what they import."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo.extend(_packages_of(m))
        todo.extend(imported_modules(module_file(m, root), root))
    return frozenset(seen)


def reached_modules(paths: Iterable[str | Path] = (), modules: Iterable[str] = (),
                    root: Path = LIBRARY_ROOT) -> list[str]:
    """Sorted names of every ``latentedit`` module reached from the files ``paths`` (e.g. a workflow script) and
    the modules ``modules``, transitively."""
    start = set(modules)
    for p in paths:
        start |= imported_modules(Path(p), root)
    out: set[str] = set()
    for m in start:
        out |= _reach(m, Path(root))
    return sorted(out)


def library_files(paths: Iterable[str | Path] = (), modules: Iterable[str] = (),
                  root: Path = LIBRARY_ROOT) -> list[str]:
    """The files of :func:`reached_modules`, sorted: a rule's code inputs."""
    return sorted(str(module_file(m, root)) for m in reached_modules(paths, modules, root))


def package_graph(root: Path = LIBRARY_ROOT) -> dict[str, set[str]]:
    """``{package: packages it imports}`` over the library's sub-packages (``latentedit.edits`` …; top-level
    modules such as ``latentedit.worlds`` count as their own package). The package ``latentedit`` itself (its
    ``__init__``, ``__version__``) is left out: every module may read it."""
    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        name = _module_name(path, root)
        src = _package_key(name)
        if src is None:
            continue
        deps = {_package_key(m) for m in imported_modules(path, root)}
        graph.setdefault(src, set()).update(d for d in deps if d is not None and d != src)
    return graph


def _package_key(module: str | None) -> str | None:
    if module is None or module == PACKAGE:
        return None
    return ".".join(module.split(".")[:2])


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as [a, b, …, a], or None when it is acyclic (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if state.get(nxt) is None and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if state.get(node) is None and (cycle := visit(node)):
            return cycle
    return None
