"""The import rules of DESIGN.md §2, checked in fresh interpreters.

- the kernel (almanac, its command line included) loads none of features, ml, viz, pages, dash;
- features loads no ml/viz/pages/dash; ml loads no viz/pages/dash; viz loads no dash;
- heavy model libraries are not imported until a model needs them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = {"lightgbm", "xgboost", "shap"}


def loaded_after(statement: str) -> set[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("statement,forbidden", [
    ("import almanac.store, almanac.importer, almanac.sessions, almanac.settings",
     {"features", "ml", "viz", "pages", "dash", *HEAVY}),
    ("from almanac.cli import build_parser; build_parser()", {"features", "ml", "viz", "pages", "dash", *HEAVY}),
])
def test_kernel_imports_no_upper_layer(statement, forbidden):
    assert loaded_after(statement) & forbidden == set()


@pytest.mark.parametrize("package,forbidden", [
    ("features", {"ml", "viz", "pages", "dash", *HEAVY}),
    ("ml", {"viz", "pages", "dash", *HEAVY}),
    ("viz", {"dash", "features", "ml", "pages", "almanac", *HEAVY}),
])
def test_layers_point_one_way(package, forbidden):
    modules = sorted(p.stem for p in (ROOT / package).glob("*.py") if p.stem != "__init__")
    if not modules:
        pytest.skip(f"{package}/ has no modules yet")
    stmt = "\n".join(f"import {package}.{m}" for m in modules)
    assert loaded_after(stmt) & forbidden == set()
