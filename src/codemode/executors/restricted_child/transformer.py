"""Compiling user code and skills: RestrictedPython's transformer with a few additions (:func:`compile_user`)."""

from __future__ import annotations

import ast
import types
import warnings
from typing import Any

from RestrictedPython.compile import compile_restricted
from RestrictedPython.transformer import (
    INSPECT_ATTRIBUTES,
    IOPERATOR_TO_STR,
    RestrictingNodeTransformer,
    copy_locations,
)

from .guards import READABLE_DUNDERS


class _AugAssignTransformer(RestrictingNodeTransformer):
    """RestrictedPython's transformer, plus ``obj[k] += v`` and ``obj.attr += v`` (common in real programs).

    Also lets programs read ``__name__``/``__qualname__``/``__doc__`` and write annotated assignments.
    RestrictedPython calls this class its compile "policy"; it has nothing to do with ``codemode.policy``.
    """

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        """Reading ``__name__``/``__qualname__``/``__doc__`` is allowed; everything else as RestrictedPython."""
        if node.attr in READABLE_DUNDERS and isinstance(node.ctx, ast.Load):
            call = ast.Call(
                func=ast.Name("_getattr_", ast.Load()),
                args=[self.visit(node.value), ast.Constant(node.attr)],
                keywords=[],
            )
            copy_locations(call, node)
            return call
        return super().visit_Attribute(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> Any:
        """``x: int = 1`` (and class fields for dataclasses); ``obj.x: int = 1`` becomes a plain assignment.

        Annotations are evaluated through the guards like any expression; nothing offered to user code
        evaluates string annotations (``typing.get_type_hints`` is withheld).
        """
        if isinstance(node.target, ast.Name):
            return self.node_contents_visit(node)
        if node.value is None:
            return None
        assign = ast.Assign(targets=[node.target], value=node.value)
        copy_locations(assign, node)
        return self.visit(assign)

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        target = node.target
        if isinstance(target, ast.Subscript) and not isinstance(target.slice, ast.Slice):
            obj = self.visit(target.value)
            helper, key = "_inplace_item_", self.visit(target.slice)
        elif isinstance(target, ast.Attribute):
            if target.attr.startswith("_") or target.attr in INSPECT_ATTRIBUTES:
                self.error(node, f'"{target.attr}" is an invalid attribute name because it starts with "_"')
                return node
            obj = self.visit(target.value)
            helper, key = "_inplace_attr_", ast.Constant(target.attr)
        else:
            return super().visit_AugAssign(node)
        operator = ast.Constant(IOPERATOR_TO_STR[type(node.op)])
        call = ast.Call(
            func=ast.Name(helper, ast.Load()),
            args=[obj, key, operator, self.visit(node.value)],
            keywords=[],
        )
        statement = ast.Expr(call)
        copy_locations(statement, node)
        return statement


def compile_user(source: Any, filename: str, mode: str) -> types.CodeType:
    """The session loop's compiler: RestrictedPython with :class:`_AugAssignTransformer` (accepts source or an AST)."""
    with warnings.catch_warnings():
        # "Prints, but never reads 'printed'" and friends: noise for our use of print.
        warnings.simplefilter("ignore", SyntaxWarning)
        try:
            return compile_restricted(source, filename, mode, policy=_AugAssignTransformer)  # type: ignore[arg-type]
        except SyntaxError as exc:
            # RestrictedPython raises SyntaxError(tuple_of_messages); make it read like one error.
            if exc.args and isinstance(exc.args[0], (tuple, list)):
                raise SyntaxError("; ".join(str(m) for m in exc.args[0])) from None
            raise
