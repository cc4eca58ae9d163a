"""
Sphinx configuration of the twisted_ws documentation.

Build: python -m sphinx -W -b html docs docs/_build/html
(pip install -e '.[docs]' installs what it needs).
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
# The checkout's package, so that the reference describes this tree.
sys.path.insert(0, str(HERE.parent))

import twisted_ws  # noqa: E402

project = "twisted_ws"
author = "the twisted_ws authors"
copyright = "the twisted_ws authors, MIT license"
release = version = twisted_ws.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "myst_parser",
    "twsdocs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "code/README.md"]
templates_path: list[str] = []

html_theme = "furo"
html_title = f"twisted_ws {release}"
html_static_path: list[str] = []

# Epytext (L{...}, @param) is turned into reST by twsdocs before autodoc
# parses a docstring; members are listed in source order, as written.
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"show-inheritance": True}
autodoc_mock_imports: list[str] = []
# The code's L{name} links point at names that autodoc may not describe
# (private helpers, Twisted's own); unresolved ones render as code.
nitpicky = False

# Reading Twisted's inventory needs the network; the build must not.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}

myst_heading_anchors = 3
