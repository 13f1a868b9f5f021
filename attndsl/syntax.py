"""Parse program text into a small AST.

Input: the text of a `g`/`f` program (or a parameter default expression) and a
`Source` that maps its positions back into the spec file. Output: a list of
statements (or one expression) made of the dataclasses below, each carrying a
`Span`. Entry points: `parse_program`, `parse_expression`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import limits
from .errors import ParseError, Span


@dataclass(frozen=True)
class Source:
    """Where a program's text sits in its file: line/column offsets of its first character."""

    file: str
    text: str
    line0: int = 0  # file line (0-based) of the program's first line
    col0: int = 0  # column offset added to every program line
    file_lines: tuple = ()  # the file's lines, to show the offending one

    def span(self, line: int, col: int, length: int = 1) -> Span:
        """Span of a 1-based program position."""
        fline = self.line0 + line  # 1-based file line
        fcol = col + (self.col0 if line >= 1 else 0)
        src = self.file_lines[fline - 1] if 0 < fline <= len(self.file_lines) else self._line(line)
        return Span(self.file, fline, fcol, max(1, length), src.rstrip("\n"))

    def _line(self, line: int) -> str:
        lines = self.text.splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else ""


# --- AST -------------------------------------------------------------------------


@dataclass
class Node:
    span: Span = field(repr=False, compare=False)


@dataclass
class Num(Node):
    value: int | float


@dataclass
class Str(Node):
    value: str


@dataclass
class Var(Node):
    name: str


@dataclass
class ListExpr(Node):
    items: list


@dataclass
class BinOp(Node):
    op: str  # add sub mul div floordiv mod matmul pow
    left: Any
    right: Any


@dataclass
class Neg(Node):
    operand: Any


@dataclass
class Call(Node):
    func: Any
    args: list
    kwargs: dict  # name -> (expr, span)


@dataclass
class Index(Node):
    base: Any
    index: Any


@dataclass
class Target(Node):
    name: str
    index: Any = None  # expr for `name[i] = ...`


@dataclass
class Assign(Node):
    targets: list
    value: Any


@dataclass
class Def(Node):
    name: str
    params: list
    body: list  # statements; the last one is a Return


@dataclass
class For(Node):
    var: str
    iterable: Any
    body: list


@dataclass
class Return(Node):
    values: list


@dataclass
class If(Node):
    cond: Any
    then: list
    orelse: list


@dataclass
class IfExp(Node):
    cond: Any
    then: Any
    orelse: Any


@dataclass
class Not(Node):
    operand: Any


# --- parser ------------------------------------------------------------------------


class _BracketNewlines:
    """Postlexer: newlines inside ( ) and [ ] do not end a statement."""

    always_accept = ("_NL",)

    def process(self, stream):
        depth = 0
        for tok in stream:
            if tok.type in ("LPAR", "LSQB"):
                depth += 1
            elif tok.type in ("RPAR", "RSQB"):
                depth = max(0, depth - 1)
            if tok.type == "_NL" and depth:
                continue
            yield tok


@cache
def _parser(start: str) -> Lark:
    return Lark.open(
        "grammar.lark",
        rel_to=__file__,
        parser="lalr",
        start=start,
        propagate_positions=True,
        postlex=_BracketNewlines(),
        maybe_placeholders=True,
    )


_BINOPS = ("add", "sub", "mul", "div", "floordiv", "mod", "matmul", "pow", "and_", "or_")

_TOKEN_NAMES = {
    "_NL": "end of line",
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "EQUAL": "`=`",
    "COMMA": "`,`",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "$END": "end of program",
    "MINUS": "`-`",
    "PLUS": "`+`",
    "STAR": "`*`",
    "SLASH": "`/`",
    "AT": "`@`",
    "PERCENT": "`%`",
    "DOUBLESTAR": "`**`",
    "DOUBLESLASH": "`//`",
    "COMPARE": "a comparison",
}


@v_args(meta=True, inline=True)
class _ToAST(Transformer):
    def __init__(self, source: Source):
        super().__init__()
        self.src = source

    def _span(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return self.src.span(1, 1)
        length = meta.end_column - meta.column if meta.line == meta.end_line else 1
        return self.src.span(meta.line, meta.column, length)

    def _tok_span(self, tok: Token) -> Span:
        return self.src.span(tok.line, tok.column, len(tok))

    # expressions
    def number(self, meta, tok):
        text = str(tok)
        digits = text.split("e")[0].split("E")[0].lstrip("0").replace(".", "")
        value = float(text) if any(c in text for c in ".eE") else int(text) if len(digits) <= 20 else math.inf
        if not math.isfinite(value) or abs(value) > limits.MAX_INT and isinstance(value, int):
            raise ParseError(
                f"number `{_cut(text)}` is too large",
                self._span(meta),
                "numbers are finite, integers at most 2**53 (docs/language.md, Limits)",
            )
        return Num(self._span(meta), value)

    def string(self, meta, tok):
        if len(tok) - 2 > limits.MAX_STRING:
            raise ParseError(
                f"a string of {len(tok) - 2} characters is over the limit of {limits.MAX_STRING}",
                self._span(meta),
                "docs/language.md, Limits",
            )
        return Str(self._span(meta), str(tok)[1:-1])

    def var(self, meta, tok):
        return Var(self._span(meta), str(tok))

    def list_(self, meta, *items):
        return ListExpr(self._span(meta), [i for i in items if i is not None])

    def neg(self, meta, operand):
        return Neg(self._span(meta), operand)

    def call(self, meta, func, args):
        pos, kw = [], {}
        for a in args or []:
            if isinstance(a, tuple):
                name, expr, span = a
                if name in kw:
                    raise ParseError(f"keyword argument `{name}` given twice", span)
                kw[name] = (expr, span)
            else:
                if kw:
                    raise ParseError("positional argument after keyword arguments", a.span)
                pos.append(a)
        return Call(self._span(meta), func, pos, kw)

    def args(self, meta, *items):
        return [i for i in items if i is not None]

    def kwarg(self, meta, name, expr):
        return (str(name), expr, self._tok_span(name))

    def index(self, meta, base, idx):
        return Index(self._span(meta), base, idx)

    # statements
    def name_target(self, meta, name):
        return Target(self._tok_span(name), str(name))

    def item_target(self, meta, name, idx):
        return Target(self._tok_span(name), str(name), idx)

    def assign(self, meta, *parts):
        *targets, value = parts
        return Assign(self._span(meta), list(targets), value)

    def params(self, meta, *names):
        return [str(n) for n in names]

    def def_expr(self, meta, name, params, expr):
        return Def(self._span(meta), str(name), params or [], [Return(expr.span, [expr])])

    def def_block(self, meta, name, params, *body):
        body = [s for s in body if s is not None]
        if not body or not isinstance(body[-1], Return):
            raise ParseError(f"function `{name}` must end with `return`", self._tok_span(name))
        return Def(self._span(meta), str(name), params or [], body)

    def for_loop(self, meta, var, iterable, *body):
        return For(self._span(meta), str(var), iterable, [s for s in body if s is not None])

    def block(self, meta, *stmts):
        return [st for st in stmts if st is not None]

    def if_stmt(self, meta, cond, then, orelse):
        return If(self._span(meta), cond, then, orelse or [])

    def ifexp(self, meta, then, cond, orelse):
        return IfExp(self._span(meta), cond, then, orelse)

    def not_(self, meta, operand):
        return Not(self._span(meta), operand)

    def compare(self, meta, a, op, b):
        return BinOp(self._span(meta), str(op), a, b)

    def return_stmt(self, meta, *values):
        return Return(self._span(meta), list(values))

    def start(self, meta, *stmts):
        return [s for s in stmts if s is not None]

    def expr_only(self, meta, expr):
        return expr


for _op in _BINOPS:
    setattr(
        _ToAST,
        _op,
        (
            lambda op: v_args(meta=True, inline=True)(
                lambda self, meta, a, b: BinOp(self._span(meta), op.rstrip("_"), a, b)
            )
        )(_op),
    )


def _syntax_error(err: UnexpectedInput, source: Source) -> ParseError:
    line = getattr(err, "line", 1) or 1
    col = getattr(err, "column", 1) or 1
    if isinstance(err, UnexpectedToken):
        tok = err.token
        if tok.type == "$END":
            line = len(source.text.splitlines()) or 1
            col = len(source._line(line)) + 1
            return ParseError(
                "unexpected end of program", source.span(line, col), "an expression or a closing bracket is missing"
            )
        shown = "end of line" if tok.type == "_NL" else f"`{tok}`"
        expected = sorted(_TOKEN_NAMES.get(e, f"`{e.lower()}`") for e in err.expected if not e.startswith("__"))
        hint = ("expected " + ", ".join(expected[:6])) if expected else None
        if tok.type == "_NL":
            col = len(source._line(line)) + 1
        if source._line(line).strip().startswith("else"):
            hint = "write `} else {` on one line"
        return ParseError(f"unexpected {shown}", source.span(line, col, len(str(tok).strip()) or 1), hint)
    if isinstance(err, UnexpectedCharacters):
        ch = source._line(line)[col - 1 : col] or "?"
        return ParseError(
            f"unexpected character `{ch}`",
            source.span(line, col),
            "operators are + - * / // % @ **; strings use quotes",
        )
    if isinstance(err, UnexpectedEOF):
        line = len(source.text.splitlines()) or 1
        return ParseError("unexpected end of program", source.span(line, len(source._line(line)) + 1))
    return ParseError(str(err).splitlines()[0], source.span(line, col))


def _cut(text: str, n: int = 24) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


_STATEMENTS = ("assign", "def_expr", "def_block", "for_loop", "if_stmt", "return_stmt")


def _check_limits(tree, source: Source) -> None:
    """Nesting depth and statement count of a parse tree, walked without recursion.

    The parser itself (LALR) keeps its own stack, but everything after it recurses
    over the tree: a tree past these limits is refused before that happens.
    """
    stack, statements = [(tree, 0)], 0
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, Tree):
            continue
        if depth > limits.MAX_NESTING:
            meta = node.meta
            line, col = (meta.line, meta.column) if not getattr(meta, "empty", True) else (1, 1)
            raise ParseError(
                f"expression or block nested deeper than {limits.MAX_NESTING} levels",
                source.span(line, col),
                "split it into several statements (docs/language.md, Limits)",
            )
        if node.data in _STATEMENTS:
            statements += 1
            if statements > limits.MAX_STATEMENTS:
                raise ParseError(
                    f"more than {limits.MAX_STATEMENTS} statements in one program",
                    source.span(node.meta.line, node.meta.column),
                    "docs/language.md, Limits",
                )
        stack.extend((c, depth + 1) for c in reversed(node.children))


def _parse(text: str, source: Source, start: str):
    # A trailing newline lets the last statement end like the others.
    try:
        tree = _parser(start).parse(text if text.endswith("\n") else text + "\n")
    except UnexpectedInput as err:
        raise _syntax_error(err, source) from None
    _check_limits(tree, source)
    try:
        return _ToAST(source).transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, ParseError):
            raise err.orig_exc from None
        raise


# Sources are frozen and hashable, and nothing downstream mutates an AST: rebuilding a spec
# with other parameters reuses its parsed programs (parsing is most of a build's time).
@lru_cache(maxsize=1024)
def parse_program(source: Source) -> list:
    """Statements of a g/f program."""
    return _parse(source.text, source, "start")


@lru_cache(maxsize=1024)
def parse_expression(source: Source):
    """One expression (a parameter default)."""
    return _parse(source.text, source, "expr_only")
