"""The import rules of docs/design.md §2, checked in fresh interpreters.

- the kernel (almanac, its command line included) loads none of features, ml, viz, pages, dash;
- features loads no ml/viz/pages/dash; ml loads no viz/pages/dash; viz loads no dash;
- heavy model libraries are not imported until a model needs them.

Loading modules only sees their top-level imports, so the source of every module is also
read (ast) for imports at any depth, inside functions included; only the command line
(cli/, an entry point like app.py) may import upper layers, and only inside its handlers;
``almanac/__main__.py`` is the one kernel file that reaches up: ``python -m almanac`` lands in cli.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = {"lightgbm", "xgboost", "shap"}
WEB = {"fastapi", "starlette", "uvicorn"}  # the REST service's framework: only api.py (and cli/serve) load it


def loaded_after(statement: str) -> set[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("statement,forbidden", [
    ("import almanac.store, almanac.importer, almanac.sessions, almanac.settings",
     {"features", "ml", "viz", "pages", "dash", *HEAVY}),
    ("from cli import build_parser; build_parser()", {"features", "ml", "viz", "pages", "dash", *HEAVY}),
])
def test_kernel_imports_no_upper_layer(statement, forbidden):
    assert loaded_after(statement) & forbidden == set()


@pytest.mark.parametrize("package,forbidden", [
    ("features", {"ml", "viz", "pages", "dash", *HEAVY}),
    ("ml", {"viz", "pages", "dash", *HEAVY, *WEB}),
    ("viz", {"dash", "features", "ml", "pages", "almanac", *HEAVY}),
])
def test_layers_point_one_way(package, forbidden):
    modules = sorted(p.stem for p in (ROOT / package).glob("*.py") if p.stem != "__init__")
    if not modules:
        pytest.skip(f"{package}/ has no modules yet")
    stmt = "\n".join(f"import {package}.{m}" for m in modules)
    assert loaded_after(stmt) & forbidden == set()


UPPER = {"features", "ml", "viz", "pages", "dash", "app", "api", "bench", "cli"}
ENTRY_SHIMS = {"almanac/__main__.py"}  # `python -m almanac` = the command line


def imports_of(path: Path, top_level_only: bool = False) -> dict[str, int]:
    """The top package of each absolute import in ``path`` (statements at any depth, and
    ``importlib.import_module("...")`` / ``__import__("...")`` with a literal name) -> line."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found: dict[str, int] = {}
    for node in nodes:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Name) and node.func.id == "__import__")
                   or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"))):
            names = [node.args[0].value]
        for name in names:
            found.setdefault(name.split(".")[0], node.lineno)
    return found


def sources(package: str, exclude: str | None = None) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    return [f for f in files if not (exclude and (ROOT / exclude) in f.parents)
            and str(f.relative_to(ROOT)) not in ENTRY_SHIMS]


@pytest.mark.parametrize("package,forbidden,exclude", [
    ("almanac", UPPER | WEB, None),  # the kernel
    ("features", UPPER - {"features"} | WEB, None),
    ("ml", UPPER - {"features", "ml"} | WEB, None),
    ("viz", UPPER - {"viz"} | {"almanac"}, None),
])
def test_no_upward_import_at_any_depth(package, forbidden, exclude):
    """Also lazy imports inside functions: ml/report.py once imported viz in its functions."""
    files = sources(package, exclude)
    assert files
    bad = [f"{f.relative_to(ROOT)}:{line} imports {name}" for f in files
           for name, line in imports_of(f).items() if name in forbidden]
    assert bad == []


def test_command_line_imports_upper_layers_only_inside_handlers():
    files = sources("cli")
    assert files
    bad = [f"{f.relative_to(ROOT)}:{line} imports {name}" for f in files
           for name, line in imports_of(f, top_level_only=True).items() if name in UPPER - {"cli"}]
    assert bad == []


def test_the_product_never_imports_the_benchmarks():
    files = [f for pkg in ("almanac", "features", "ml", "viz", "pages") for f in sources(pkg)]
    files += [ROOT / "app.py", ROOT / "api.py"]
    bad = [f"{f.relative_to(ROOT)}:{line}" for f in files for name, line in imports_of(f).items() if name == "bench"]
    assert bad == []


def test_the_rest_service_loads_no_page_and_no_model_library_at_import():
    """api.py (the REST entry) stands beside app.py: it imports ml.serving, never dash, the
    pages or viz, and loads model libraries only when a model is loaded."""
    assert loaded_after("import api") & {"dash", "pages", "viz", "app", "bench", *HEAVY} == set()
    bad = [f"api.py:{line} imports {name}" for name, line in imports_of(ROOT / "api.py").items()
           if name in {"dash", "pages", "viz", "app", "bench", "features"}]
    assert bad == []


def test_only_the_celery_command_loads_worker_py():
    """worker.py is the second entry point (``celery -A worker worker``): the layers, the command
    line, the benches and the web entry point send tasks by name and never import it."""
    files = [f for pkg in ("almanac", "features", "ml", "viz", "pages", "cli", "bench") for f in sources(pkg)]
    files.append(ROOT / "app.py")
    bad = [f"{f.relative_to(ROOT)}:{line}" for f in files for name, line in imports_of(f).items() if name == "worker"]
    assert bad == []


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imported_modules(path: Path, known: set[str]) -> set[str]:
    """Project modules imported by ``path`` at any depth: ``from a.b import c`` is a.b.c when
    that is a module (a submodule import), else a.b."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in known else node.module)
    return out


def test_no_two_modules_import_each_other():
    """ml/export.py and ml/report.py once did (docs/design.md §2)."""
    files = [f for pkg in ("almanac", "features", "ml", "viz", "pages", "cli", "bench") for f in sources(pkg)]
    modules = {_module_name(f): f for f in files}
    graph = {name: {m for m in _imported_modules(f, set(modules)) if m in modules and m != name}
             for name, f in modules.items()}
    pairs = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps if a in graph.get(b, ())})
    assert pairs == []


#: What `import app` must not load: each costs from a tenth of a second to over a second
#: of start-up, and none is needed before a job trains, explains or scores a model.
HEAVY_AT_START = ("scipy.stats", "sklearn", "lightgbm", "xgboost", "shap", "exchange_calendars")


def test_importing_the_app_loads_no_heavy_library(tmp_path):
    """`python app.py` should answer within 1.5 s: the pages import ml modules, which load
    scikit-learn, scipy.stats and the model libraries only inside the functions that use them."""
    code = ("import sys, json\nimport app\n"
            "print(json.dumps(sorted(m for m in sys.modules "
            f"if any(m == h or m.startswith(h + '.') for h in {HEAVY_AT_START!r}))))")
    env = {**os.environ, "ALMANAC_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, env=env)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == []
