"""Python 3.9 for ``frameworks/``: the bullseye images (Caffe, Caffe2, Chainer, NNabla) run it there.

The code keeps to 3.9 at run time (``from __future__ import annotations`` everywhere, no ``match``,
no ``X | Y`` outside annotations, no ``zip(strict=)``; ``tests/test_py39.py`` checks the source).
What 3.9 cannot do is evaluate a PEP 604 annotation such as ``"float | None"``, which the result
schema and the scenario configs read back with ``typing.get_type_hints``: ``type_hints`` does it
on every version, and ``UNION_TYPES`` names the union origins the running Python has.
"""

from __future__ import annotations

import ast
import sys
import types
import typing
from typing import Any

# typing.Union, and on 3.10+ types.UnionType (what ``X | Y`` makes): the origins of a union hint.
UNION_TYPES: tuple[Any, ...] = (typing.Union, *((types.UnionType,) if hasattr(types, "UnionType") else ()))


def type_hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints(cls)``; on Python 3.9 each ``X | Y`` in an annotation string is read as
    ``typing.Union[X, Y]`` first (3.9's ``type.__or__`` does not exist)."""
    if sys.version_info >= (3, 10):
        return typing.get_type_hints(cls)
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        namespace = {**vars(sys.modules[klass.__module__]), "Union": typing.Union, **vars(klass)}
        for name, annotation in vars(klass).get("__annotations__", {}).items():
            hints[name] = _evaluate(annotation, namespace) if isinstance(annotation, str) else annotation
    return hints


class _UnionOfOr(ast.NodeTransformer):
    """``a | b | c`` -> ``Union[a, b, c]``."""

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if not isinstance(node.op, ast.BitOr):
            return node
        members = [*_members(node.left), *_members(node.right)]
        index = ast.Tuple(elts=members, ctx=ast.Load())
        return ast.Subscript(value=ast.Name(id="Union", ctx=ast.Load()), slice=index, ctx=ast.Load())


def _members(node: ast.expr) -> list[ast.expr]:
    """The members of an already rewritten union (flattened), else the node itself."""
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "Union":
        index = node.slice
        return list(index.elts) if isinstance(index, ast.Tuple) else [index]
    return [node]


def _evaluate(annotation: str, namespace: dict[str, Any]) -> Any:
    tree = ast.fix_missing_locations(_UnionOfOr().visit(ast.parse(annotation, mode="eval")))
    return eval(compile(tree, "<annotation>", "eval"), namespace)  # the module's own annotations, nothing else
