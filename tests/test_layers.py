"""Layers point down (docs/decisions/layers.md), checked on the source itself.

Every module of ``src/faoyam`` is parsed with ``ast`` and every import it makes — at the
top of the module *and* inside functions — is checked against the dependency rules:

* ``core`` imports only ``core``;
* the privacy engine (``faoyam.privacy`` except its routes, ``privacy.api``) imports only
  ``core`` and itself;
* ``web.templating``, the one template environment, imports only ``core``, so that any
  domain may render through it; nothing else in ``web`` is for domains;
* a domain imports ``core``, the privacy engine, its own modules and other domains'
  public modules, never another domain's ``models``, ``api``, ``pages`` or ``views``, and
  never the composition layer (``app``, ``cli``, ``roles``, ``models``, ``migrations``, ``web``);
* a function-local import of a faoyam module is allowed only in a CLI module (start-up
  speed); elsewhere it hides a cycle, and the cycle must be fixed instead;
* ``faoyam.privacy.declarations`` moved to ``faoyam.core.declarations``.

A new domain (media, alarms, cloud ...) is any new package under ``faoyam`` and gets the
domain rules without changing this file. Each violation names its file and line.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

import faoyam

SRC = Path(faoyam.__file__).resolve().parent.parent

# Packages that are not domains, and modules of the composition layer at the top.
CORE, PRIVACY, WEB = "core", "privacy", "web"
PRIVACY_ROUTES = {"faoyam.privacy.api"}  # privacy's HTTP face needs the signed-in user: domain level
RENDERING = "faoyam.web.templating"
TOP = {"app", "cli", "models", "migrations", "roles", "__main__"}
PRIVATE_PARTS = {"models", "api", "pages", "views"}  # of a domain, for its own use only
MOVED = {"faoyam.privacy.declarations": "faoyam.core.declarations"}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module (``from a.b import c`` is ``a.b.c`` when c is a module)
    path: Path
    line: int
    local: bool  # inside a function or class body rather than at module level


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    module: str
    target: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.module} imports {self.target}: {self.rule}"


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(root: Path) -> dict[str, Path]:
    return {_module_name(root, p): p for p in sorted((root / "faoyam").rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(root: Path) -> list[Import]:
    """Every faoyam import of every module under ``root/faoyam``."""
    modules = _modules(root)
    out: list[Import] = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        is_package = path.name == "__init__.py"

        def visit(node: ast.AST, local: bool) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.Import):
                    for alias in child.names:
                        out.append(Import(module, alias.name, path, child.lineno, local))
                elif isinstance(child, ast.ImportFrom):
                    base = _resolve(module, is_package, child)
                    for alias in child.names:
                        sub = f"{base}.{alias.name}"
                        out.append(Import(module, sub if sub in modules else base, path, child.lineno, local))
                inside = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))
                visit(child, inside)

        visit(tree, False)
    return [i for i in out if i.target == "faoyam" or i.target.startswith("faoyam.")]


def _package(module: str) -> str:
    """The first name under faoyam: ``core``, ``privacy``, a domain's, or a top module's."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _layer(module: str) -> str:
    pkg = _package(module)
    if module == "faoyam":
        return "root"  # the package itself: its docstring and __version__
    if pkg == CORE or module == RENDERING:
        return "core"
    if pkg == PRIVACY:
        return "domain" if module in PRIVACY_ROUTES else "privacy"
    if pkg == WEB or pkg in TOP:
        return "top"
    return "domain"


def _direction(src: str, dst: str) -> str | None:
    """The dependency rule an import from ``src`` to ``dst`` breaks, or None."""
    have, want = _layer(src), _layer(dst)
    if want == "root":
        return None
    if have == "core":
        return None if want == "core" else "core imports only core"
    if have == "privacy":
        return None if want in ("core", "privacy") else "the privacy engine imports only core and itself"
    if have == "domain":
        if want == "top":
            return f"a domain does not import the composition layer (only {RENDERING} of web)"
        if want == "domain" and _package(dst) != _package(src):
            private = PRIVATE_PARTS.intersection(dst.split(".")[2:])
            if private:
                return f"a domain does not import another domain's {'/'.join(sorted(private))}"
    return None  # the composition layer may import anything


def check(imp: Import) -> str | None:
    """Every rule ``imp`` breaks (joined with "; "), or None."""
    rules = []
    if imp.target in MOVED:
        rules.append(f"moved: import {MOVED[imp.target]}")
    if imp.local and not (imp.module == "faoyam.cli" or imp.module.endswith(".cli")):
        rules.append("function-local import (hides an import cycle: fix the cycle, import at the top)")
    direction = _direction(imp.module, imp.target)
    if direction:
        rules.append(direction)
    return "; ".join(rules) or None


def violations(root: Path) -> list[Violation]:
    out = []
    for imp in imports(root):
        rule = check(imp)
        if rule:
            out.append(Violation(imp.path.relative_to(root.parent), imp.line, imp.module, imp.target, rule))
    return out


def test_layers_point_down():
    found = violations(SRC)
    assert found == [], "imports against docs/decisions/layers.md:\n" + "\n".join(map(str, found))


def test_the_checker_reads_the_real_tree():
    """Guards the test above from passing vacuously (no modules found, no imports read)."""
    found = imports(SRC)
    targets = {(i.module, i.target) for i in found}
    assert ("faoyam.devices.sharing", "faoyam.accounts.service") in targets
    assert ("faoyam.models", "faoyam.accounts.models") in targets  # ``from faoyam.accounts import models``
    assert any(i.local for i in found if i.module == "faoyam.cli")  # function-local imports are read


# Each case: a module of a synthetic tree, its source, and the rule it must break (None: allowed).
CASES = [
    ("core/storage.py", "from faoyam.privacy.declarations import BLOB_KINDS", "moved"),
    ("core/storage.py", "from faoyam.accounts import service", "core imports only core"),
    ("core/database.py", "def create_all():\n    from faoyam import models", "function-local"),
    ("core/database.py", "def create_all():\n    from faoyam import models", "core imports only core"),
    ("core/jobs.py", "import faoyam.models", "core imports only core"),
    ("core/jobs.py", "from faoyam.web.templating import render", None),
    ("core/jobs.py", "from faoyam.core.declarations import personal", None),
    ("core/jobs.py", "from .declarations import personal", None),
    ("core/jobs.py", "from ..accounts import service", "core imports only core"),
    ("privacy/subjects.py", "from faoyam.devices.models import Device", "the privacy engine imports only core"),
    ("privacy/subjects.py", "from faoyam import models", "the privacy engine imports only core"),
    ("privacy/subjects.py", "from faoyam.core.tables import every_table", None),
    ("privacy/pages.py", "from faoyam.web.cookies import COOKIES", "the privacy engine imports only core"),
    ("privacy/api.py", "from faoyam.accounts.deps import current_user", None),
    ("web/templating.py", "from faoyam.accounts.deps import CurrentUser", "core imports only core"),
    ("devices/sharing.py", "from faoyam.accounts.models import User", "another domain's models"),
    ("devices/sharing.py", "from faoyam.accounts import api", "another domain's api"),
    ("devices/sharing.py", "from faoyam.accounts.service import get_user_brief", None),
    ("devices/sharing.py", "from faoyam.devices.models import Share", None),
    ("devices/sharing.py", "from faoyam.privacy.subjects import remove_rows", None),
    ("accounts/oidc.py", "from faoyam.web.templating import render", None),
    ("accounts/oidc.py", "from faoyam.web.cookies import COOKIES", "composition layer"),
    ("accounts/oidc.py", "from faoyam.app import create_app", "composition layer"),
    ("media/recorder.py", "from faoyam.devices.views import describe", "another domain's views"),
    ("media/recorder.py", "async def f():\n    from faoyam.devices import service", "function-local"),
    ("media/cli.py", "def f():\n    from faoyam.devices import service", None),
    ("app.py", "from faoyam.devices import models", None),
]


@pytest.mark.parametrize(("where", "source", "rule"), CASES)
def test_the_checker_finds_what_breaks_a_rule(tmp_path, where, source, rule):
    pkg = tmp_path / "faoyam"
    for name in ("core/declarations.py", "core/tables.py", "web/templating.py", "web/cookies.py", "accounts/service.py",
                 "accounts/models.py", "accounts/api.py", "accounts/deps.py", "devices/models.py",
                 "devices/views.py", "devices/service.py", "privacy/subjects.py", "privacy/declarations.py",
                 "models.py", "app.py", where):
        f = pkg / name
        f.parent.mkdir(parents=True, exist_ok=True)
        for d in [f.parent, *f.parent.parents]:
            if d == tmp_path:
                break
            (d / "__init__.py").touch()
        f.touch()
    (pkg / where).write_text(textwrap.dedent(source) + "\n")
    found = [v for v in violations(tmp_path) if v.path == Path(tmp_path.name, "faoyam", where)]
    if rule is None:
        assert found == []
    else:
        assert len(found) == 1 and rule in found[0].rule, found
        assert found[0].line == source.count("\n") + 1  # the line of the import itself


def test_the_privacy_engine_refuses_to_work_without_every_table():
    """Core and privacy no longer import the domains' models; a process that forgot to import
    ``faoyam.models`` gets an error instead of an export or erasure that misses tables."""
    code = "from faoyam.privacy.subjects import declared_tables\ndeclared_tables()"
    bare = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert bare.returncode != 0 and "import faoyam.models first" in bare.stderr
    loaded = subprocess.run([sys.executable, "-c", "import faoyam.models\n" + code], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
