"""Griffe extension for the docs build: Sphinx roles in docstrings become mkdocstrings cross-references.

The docstrings use numpydoc's ``:class:`~labelclean.CoTeachingFilter``` and ``:func:`refine_targets```
roles. Markdown has no such roles, so this rewrites them before mkdocstrings renders a docstring:
a target inside ``labelclean`` becomes a link to its API entry (a bare name is looked up in the
docstring's own module first), anything else (private names, NumPy, pyarrow, torch) becomes code.
A link to an entry the API pages do not render fails the strict build, so the links stay true.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|obj|exc):`(~?)([\w.]+)`")


def _module_of(obj: Any) -> Any:
    while obj is not None and not obj.is_module:
        obj = obj.parent
    return obj


def _resolve(name: str, obj: Any) -> str | None:
    """The full path of ``name`` seen from ``obj``'s module, or None when it is not a public labelclean name."""
    if "." not in name:
        module = _module_of(obj)
        if module is None or name not in module.members:
            return None
        name = f"{module.path}.{name}"
    if not name.startswith("labelclean") or any(part.startswith("_") for part in name.split(".")):
        return None
    return name


def rewrite_roles(text: str, obj: Any) -> str:
    def replace(match: re.Match) -> str:
        tilde, name = match.groups()
        shown = name.rsplit(".", 1)[-1] if tilde else name
        target = _resolve(name, obj)
        return f"[`{shown}`][{target}]" if target else f"`{shown}`"

    return _ROLE.sub(replace, text)


def _walk(obj: Any) -> None:
    if obj.docstring is not None and ":" in obj.docstring.value:
        obj.docstring.value = rewrite_roles(obj.docstring.value, obj)
    for member in obj.members.values():
        if not member.is_alias:
            _walk(member)


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring of a package once it is loaded (so later names resolve too)."""

    def on_package(self, *, pkg: Any, **kwargs: Any) -> None:
        _walk(pkg)
