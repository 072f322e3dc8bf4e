"""The layering rule, checked on the source: clients never import the sandbox.

The platform is resolved once at the command boundary (`library.platform.resolve`, with the
sandbox as one provider) and handed down as URLs and tokens. A client package that imported
`library.sandbox` would look the platform up itself again; `library.sandbox` importing a client
(`library.tap`) would make the provider depend on what runs against it, a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ("library/tap", "library/jupyter", "library/flock", "library/notebooks", "library/sia")
# What the sandbox (a provider of the platform) may not import: the clients that run against it.
SANDBOX_MUST_NOT_IMPORT = ("library.tap", "library.jupyter", "library.flock", "library.sia")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module PATH imports, at any depth (function-level imports included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from library import sandbox` imports the package through its parent.
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", "") == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.append((node.lineno, str(node.args[0].value)))
    return found


def violations(files: list[Path], forbidden: tuple[str, ...], root: Path = ROOT) -> list[str]:
    """``path:line imports module`` for each forbidden import, one per line of source."""
    bad: dict[str, str] = {}
    for path in files:
        for line, module in imported_modules(path):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                bad.setdefault(f"{path.relative_to(root)}:{line}", module)
    return [f"{where} imports {module}" for where, module in sorted(bad.items())]


def test_no_client_package_imports_the_sandbox():
    files = [p for d in CLIENTS for p in sorted((ROOT / d).rglob("*.py"))]
    assert files, "no client modules found: the test would check nothing"
    assert violations(files, ("library.sandbox",)) == []


def test_the_sandbox_imports_no_client():
    files = sorted((ROOT / "library" / "sandbox").rglob("*.py"))
    assert (ROOT / "library" / "sandbox" / "dachs.py") in files
    assert violations(files, SANDBOX_MUST_NOT_IMPORT) == []


def test_the_checker_sees_every_import_form(tmp_path):
    """Each form a client could use to reach the sandbox is caught (the rule cannot pass empty)."""
    source = tmp_path / "client.py"
    source.write_text(
        "import library.sandbox\n"
        "from library import sandbox\n"
        "def f():\n"
        "    from library.sandbox.dachs import up\n"
        "    import importlib\n"
        "    importlib.import_module('library.sandbox.hub')\n",
        encoding="utf-8",
    )
    found = violations([source], ("library.sandbox",), root=tmp_path)
    assert [line.split(":")[1].split()[0] for line in found] == ["1", "2", "4", "6"]
