"""
Sphinx helpers for the twisted_ws documentation.

- The code's docstrings are epytext (C{L{name}}, C{C{code}}, C{@param}),
  as in Twisted; L{epytextToRest} turns each into reST when autodoc reads
  it (the C{autodoc-process-docstring} event), so the API reference renders
  them without a second documentation tool.
- C{.. twistd-options::} renders every option of C{twistd websocket} from
  L{twisted_ws.twistd.options.Options}, and C{.. websocket-limits::} every
  field of L{twisted_ws.core.options.WebSocketOptions} with its default and
  the reason written beside it in the source: generated at build time, so
  the reference cannot drift from the code.
"""

from __future__ import annotations

import re
import sys
from dataclasses import fields

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import SphinxDirective

# -- epytext to reST ------------------------------------------------------------------

_INLINE = re.compile(r"([LCIBUEM])\{")
_FIELDS = {
    "param": "param",
    "type": "type",
    "ivar": "ivar",
    "cvar": "cvar",
    "var": "var",
    "return": "returns",
    "returns": "returns",
    "rtype": "rtype",
    "raise": "raises",
    "raises": "raises",
    "keyword": "keyword",
    "see": "see",
    "note": "note",
    "since": "since",
}
_FIELD_LINE = re.compile(r"^(\s*)@(\w+)(\s+[^:]+)?:(.*)$")
_ESCAPES = {"lb": "{", "rb": "}"}


def _matching(text: str, start: int) -> int:
    """The index of the brace closing the one before C{start}, or -1."""
    depth = 1
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _literal(code: str) -> str:
    code = code.replace("\n", " ")
    if not code.strip():
        return code
    if "`" in code:
        # Inline literals cannot hold backquotes: fall back to a role.
        return ":code:`" + code.replace("\\", "\\\\").replace("`", "\\`") + "`"
    return "``" + code + "``"


def _inline(text: str) -> str:
    """Epytext inline markup in C{text} as reST."""
    out: list[str] = []
    pos = 0
    while True:
        m = _INLINE.search(text, pos)
        if m is None:
            out.append(text[pos:])
            break
        end = _matching(text, m.end())
        if end < 0:
            out.append(text[pos:])
            break
        out.append(text[pos : m.start()])
        kind, body = m.group(1), text[m.end() : end]
        if kind == "C":
            piece = _literal(body)
        elif kind == "L":
            label, _, target = body.partition("<")
            if target.endswith(">"):
                piece = f":py:obj:`{label.strip()} <{target[:-1].strip()}>`"
            else:
                piece = f":py:obj:`{body.strip()}`"
        elif kind == "U":
            label, _, target = body.partition("<")
            if target.endswith(">"):
                piece = f"`{label.strip()} <{target[:-1].strip()}>`__"
            else:
                piece = f"`{body.strip()} <{body.strip()}>`__"
        elif kind == "I":
            piece = f"*{_inline(body).strip()}*"
        elif kind == "B":
            piece = f"**{_inline(body).strip()}**"
        elif kind == "E":
            piece = _ESCAPES.get(body, body)
        else:  # M{math}
            piece = _literal(body)
        # reST inline markup must stand apart from the letters around it.
        before = "".join(out)[-1:]
        if before and (before.isalnum() or before in "`*_"):
            piece = "\\ " + piece
        after = text[end + 1 : end + 2]
        if after and (after.isalnum() or after in "`*_"):
            piece += "\\ "
        out.append(piece)
        pos = end + 1
    return "".join(out)


def epytextToRest(lines: list[str]) -> list[str]:
    """
    One docstring's lines, epytext to reST: inline markup (a construct may
    span lines, so the text is converted whole) and C{@field}s to field
    lists, after a blank line as reST requires.
    """
    converted = _inline("\n".join(lines)).split("\n")
    out: list[str] = []
    for line in converted:
        m = _FIELD_LINE.match(line)
        if m and m.group(2) in _FIELDS:
            indent, name, arg, rest = m.groups()
            if out and out[-1].strip() and not _FIELD_LINE.match(out[-1]) and not out[-1].startswith(":"):
                # The first field after prose: reST needs a blank line.
                if not out[-1].startswith(indent + " "):
                    out.append("")
            arg = f" {arg.strip()}" if arg else ""
            out.append(f"{indent}:{_FIELDS[name]}{arg}:{rest}")
        else:
            out.append(line)
    return out


def processDocstring(app, what, name, obj, options, lines: list[str]) -> None:
    lines[:] = epytextToRest(lines)


# -- generated reference tables -------------------------------------------------------


def _table(header: list[str], rows: list[list[str]], widths: str) -> list[str]:
    out = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
    for row in [header, *rows]:
        first = True
        for cell in row:
            lines = cell.split("\n") or [""]
            out.append(("   * - " if first else "     - ") + lines[0])
            out.extend("       " + more for more in lines[1:])
            first = False
    return out


def _size(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        return repr(value)
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if value >= 1 << shift and value % (1 << shift) == 0:
            return f"{value} ({value >> shift} {unit})"
    return str(value)


class TwistdOptions(SphinxDirective):
    """Every option of C{twistd websocket}, read from its Options class."""

    def run(self) -> list[nodes.Node]:
        from twisted_ws.twistd.options import Options

        options = Options()
        short = {long: s for s, long in options.synonyms.items() if len(s) == 1}
        flags = {name for name in options.longOpt if not name.endswith("=")}
        coerceDocs = {p[0]: getattr(p[4], "coerceDoc", None) for p in Options.optParameters if len(p) > 4}
        rows = []
        for name in sorted(n for n in options.docs if len(n) > 1):  # one letter: a synonym
            spelled = f"``--{name}``" if name in flags else f"``--{name}=VALUE``"
            if name in short:
                spelled += f", ``-{short[name]}``"
            doc = " ".join((options.docs[name] or "").split())
            coerce = coerceDocs.get(name)
            if coerce and coerce not in doc:
                doc = f"{doc} {coerce}"
            default = options.defaults.get(name)
            rows.append([spelled, _literal(repr(default)) if default is not None else "", _escape(doc)])
        self.env.note_dependency(sys.modules[Options.__module__].__file__)
        return self._parse(_table(["option", "default", "meaning"], rows, "25 15 60"))

    def _parse(self, lines: list[str]) -> list[nodes.Node]:
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source="twsdocs"), self.content_offset, container)
        return container.children


def _escape(text: str) -> str:
    """Plain text made safe for reST (the help texts hold * and backquotes)."""
    return re.sub(r"([*`|_\\])", r"\\\1", text)


class WebSocketLimits(TwistdOptions):
    """Every WebSocketOptions field: default, twistd option, and the reason in the source."""

    def run(self) -> list[nodes.Node]:
        from twisted_ws.core import options as module
        from twisted_ws.twistd.options import Options

        reasons = ModuleAnalyzer.for_module(module.__name__).find_attr_docs()
        twistdNames = Options().docs
        rows = []
        for f in fields(module.WebSocketOptions):
            reason = " ".join(" ".join(reasons.get(("WebSocketOptions", f.name), [])).split())
            # maxMessageSize is --max-message-size, maxRequestLineLength --max-request-line.
            kebab = re.sub(r"([A-Z])", lambda m: "-" + m.group(1).lower(), f.name)
            names = [n for n in (kebab, kebab.removesuffix("-length")) if n in twistdNames]
            flag = f"``--{names[0]}``" if names else ""
            isBytes = f.name.endswith(("Size", "Bytes", "Length"))
            default = _size(f.default) if isBytes else repr(f.default)
            rows.append([f"``{f.name}``", default, flag, _inline(reason)])
        self.env.note_dependency(module.__file__)
        return self._parse(_table(["option", "default", "twistd", "why"], rows, "18 16 16 50"))


class ZopeInterface(TwistdOptions):
    """
    A zope.interface Interface (autodoc takes it for an instance): the
    interface's docstring, then each attribute and method with its own.
    """

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        from zope.interface.interface import Method

        module, _, name = self.arguments[0].rpartition(".")
        iface = getattr(__import__(module, fromlist=[name]), name)
        lines = [f".. py:class:: {name}", "", "   Bases: ``zope.interface.Interface``", ""]
        lines += ["   " + line for line in epytextToRest(_dedent(iface.__doc__ or ""))]
        for member, description in iface.namesAndDescriptions():
            if isinstance(description, Method):
                lines += ["", f"   .. py:method:: {member}{description.getSignatureString()}", ""]
            else:
                lines += ["", f"   .. py:attribute:: {member}", ""]
            doc = _dedent(description.getDoc() or "")
            lines += ["      " + line for line in epytextToRest(doc)]
        return self._parse(lines)


def _dedent(doc: str) -> list[str]:
    import inspect

    return inspect.cleandoc(doc).splitlines()


def setup(app):
    app.add_directive("zope-interface", ZopeInterface)
    app.connect("autodoc-process-docstring", processDocstring)
    app.add_directive("twistd-options", TwistdOptions)
    app.add_directive("websocket-limits", WebSocketLimits)
    return {"version": "1", "parallel_read_safe": True}
