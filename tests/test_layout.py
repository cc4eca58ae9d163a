"""
The package keeps its I/O-free core apart from the Twisted glue: nothing in
twisted_ws/core may import Twisted (or zope.interface), so the protocol
logic can be tested and fuzzed without a reactor.  The twistd plugin folder
must stay a plain folder of plugin modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import twisted_ws.core

CORE = Path(twisted_ws.core.__file__).parent
ROOT = Path(__file__).resolve().parent.parent


def importedModules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_coreImportsNoTwisted(path: Path) -> None:
    offending = {
        name for name in importedModules(path) if name.split(".")[0] in ("twisted", "zope")
    }
    assert not offending, f"{path.name} imports {sorted(offending)}"


def test_pluginFolderHasNoInit() -> None:
    plugins = ROOT / "twisted" / "plugins"
    if not plugins.is_dir():
        pytest.skip("not run from a source checkout")
    assert not (plugins / "__init__.py").exists()
    assert (plugins / "twisted_ws_plugin.py").exists()
