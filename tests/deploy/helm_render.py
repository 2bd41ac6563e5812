"""A deliberately small renderer for the subset of Helm templating our chart uses, so that CI can
schema-check the manifests where no helm binary can be installed. Supported: ``.Release.Name``,
``.Values.a.b``, the pipes ``quote`` and ``nindent N``, ``if`` / ``if not`` / ``else`` / ``end`` and the
``{{-`` / ``-}}`` whitespace trimming. Anything else raises, so the chart cannot drift past it silently.
"""

from __future__ import annotations

import json
import re
from typing import Any

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


class UnsupportedTemplate(ValueError):
    pass


def _lookup(expr: str, values: dict[str, Any], release: str) -> Any:
    if expr == ".Release.Name":
        return release
    if not expr.startswith(".Values."):
        raise UnsupportedTemplate(f"unsupported expression {expr!r}")
    node: Any = values
    for part in expr[len(".Values.") :].split("."):
        node = node[part]
    return node


def _evaluate(expr: str, values: dict[str, Any], release: str) -> str:
    head, *pipes = [p.strip() for p in expr.split("|")]
    value = _lookup(head, values, release)
    text = value if isinstance(value, str) else json.dumps(value) if not isinstance(value, int | float) else str(value)
    for pipe in pipes:
        if pipe == "quote":
            text = json.dumps(str(value))
        elif m := re.fullmatch(r"nindent (\d+)", pipe):
            pad = " " * int(m.group(1))
            text = "\n" + "\n".join(pad + line if line else line for line in str(value).splitlines())
        else:
            raise UnsupportedTemplate(f"unsupported pipe {pipe!r}")
    return text


def render(template: str, values: dict[str, Any], release: str = "test") -> str:
    out: list[str] = []
    stack: list[tuple[bool, bool]] = []  # (this branch active, any enclosing branch inactive)
    pos = 0
    for m in _ACTION.finditer(template):
        text = template[pos : m.start()]
        if m.group(1):
            text = text.rstrip(" \t\n")
        active = all(a for a, _ in stack)
        if active:
            out.append(text)
        action = m.group(2)
        if mm := re.fullmatch(r"if (not )?(\S+)", action):
            cond = bool(_lookup(mm.group(2), values, release))
            stack.append((cond != bool(mm.group(1)), not active))
        elif action == "else":
            cond, outer_inactive = stack.pop()
            stack.append((not cond, outer_inactive))
        elif action == "end":
            stack.pop()
        elif active:
            out.append(_evaluate(action, values, release))
        pos = m.end()
        if m.group(3):
            while pos < len(template) and template[pos] in " \t\n":
                pos += 1
    if stack:
        raise UnsupportedTemplate("unbalanced if/end")
    out.append(template[pos:])
    return "".join(out)
