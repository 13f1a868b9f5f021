"""Load a spec file: safe YAML with source positions, typed parameters.

Input: a path (or text). Output: a `Spec` with its metadata, parameter
declarations, inputs, programs (as `Source`s that remember where they sit in
the file) and example. `Spec.resolve(**values)` checks and completes parameter
values, evaluating default expressions. Nothing is executed as Python: YAML is
composed with the safe loader and any Python-object tag is refused.
Entry points: `load_spec`, `Spec.resolve`.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from . import limits
from .errors import ParamError, Span, SpecError, did_you_mean
from .syntax import Source, parse_expression

TOP_KEYS = (
    "name",
    "title",
    "family",
    "paper",
    "code",
    "notes",
    "params",
    "inputs",
    "g",
    "f",
    "outputs",
    "example",
    "shapes",
    "convert",
    "maps",
)
RESERVED_PARAMS = ("check_inputs", "compile", "passes", "inplace")  # build()'s own keywords
REQUIRED = ("name", "title", "family", "paper", "inputs", "f", "outputs", "example")
# the survey's families, then the post-survey ones: token-mixing self-attention of vision transformers
# (windowed, sparse, linear) and focal modulation, which replaces attention by gated aggregation
FAMILIES = (
    "channel",
    "spatial",
    "temporal",
    "branch",
    "channel_spatial",
    "spatial_temporal",
    "transformer",
    "modulation",
)
TYPES = {
    "int": int,
    "float": float,
    "bool": bool,
    "str": str,
    "list[int]": list,
    "list[str]": list,
    "list[float]": list,
}


@dataclass
class Param:
    name: str
    type: str
    default: object = None  # a value, or a Source holding an expression
    has_default: bool = False
    doc: str = ""
    choices: tuple | None = None
    minimum: float | None = None
    span: Span | None = None


@dataclass
class Spec:
    path: str
    name: str
    title: str
    family: str
    paper: str
    code: str
    params: dict  # name -> Param, in file order
    inputs: dict  # name -> list of dim texts
    g: Source | None
    f: Source
    outputs: list
    example: dict
    shapes: list = field(default_factory=list)  # extra input-shape sets for tests
    spans: dict = field(default_factory=dict)  # key path -> Span
    lines: tuple = ()

    def span(self, *path) -> Span | None:
        return self.spans.get(tuple(path))

    def resolve(self, **values) -> dict:
        """Every parameter's value: the given ones checked, the others from defaults."""
        for k in values:
            if k not in self.params:
                raise ParamError(
                    f"`{self.name}` has no parameter `{k}`",
                    self.span("params"),
                    did_you_mean(k, self.params) or f"parameters: {', '.join(self.params)}",
                )
        out: dict = {}
        busy: set = set()

        def get(name):
            if name in out:
                return out[name]
            p = self.params[name]
            if name in values:
                v = coerce(p, values[name])
            elif not p.has_default:
                raise ParamError(
                    f"parameter `{name}` of `{self.name}` has no default and was not given",
                    p.span,
                    f'pass it, e.g. `-p {name}=...` or build("{self.name}", {name}=...)',
                )
            elif isinstance(p.default, Source):
                if name in busy:
                    raise ParamError(f"the default of `{name}` depends on itself", p.span)
                busy.add(name)
                v = coerce(p, eval_static(parse_expression(p.default), get, self.params), p.span)
                busy.discard(name)
            else:
                v = coerce(p, p.default, p.span)
            check_range(p, v)
            out[name] = v
            return v

        for name in self.params:
            get(name)
        return out


def _kind(v) -> str:
    """What a compile-time value is, for messages."""
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, (list, tuple)):
        return "a list"
    return "none" if v is None else "a value"


def check_value(v, span, what="a value"):
    """A compile-time value within the language's limits (finite, bounded ints, short strings and lists)."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int):
        if abs(v) > limits.MAX_INT:
            raise ParamError(
                f"{what} is too large: magnitude above 2**53",
                span,
                "numbers are limited to 2**53 (docs/language.md, Limits)",
            )
    elif isinstance(v, float):
        if not math.isfinite(v):
            raise ParamError(
                f"{what} is not a finite number ({v})", span, "numbers must be finite (docs/language.md, Limits)"
            )
    elif isinstance(v, str):
        if len(v) > limits.MAX_STRING:
            raise ParamError(
                f"{what}: a string of {len(v)} characters is over the limit of {limits.MAX_STRING}",
                span,
                "docs/language.md, Limits",
            )
    elif isinstance(v, complex):
        raise ParamError(f"{what} is a complex number", span, "a negative number to a fractional power?")
    elif isinstance(v, (list, tuple)):
        if len(v) > limits.MAX_LIST:
            raise ParamError(
                f"{what}: a list of {len(v)} items is over the limit of {limits.MAX_LIST}",
                span,
                "docs/language.md, Limits",
            )
        for i in v:
            check_value(i, span, what)
    return v


def coerce(p: Param, v, span=None):
    """A value of the parameter's type, from a Python value or CLI text."""
    span = span or p.span
    want = p.type
    try:
        if isinstance(v, str) and want in ("int", "float", "bool", "list[int]", "list[float]", "list[str]"):
            v = _from_text(v, want)
        if want == "int" and isinstance(v, float) and v.is_integer():
            v = int(v)
        if want == "float" and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        ok = {
            "int": lambda x: isinstance(x, int) and not isinstance(x, bool),
            "float": lambda x: isinstance(x, float),
            "bool": lambda x: isinstance(x, bool),
            "str": lambda x: isinstance(x, str),
            "list[int]": lambda x: (
                isinstance(x, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in x)
            ),
            "list[float]": lambda x: isinstance(x, list) and all(isinstance(i, (int, float)) for i in x),
            "list[str]": lambda x: isinstance(x, list) and all(isinstance(i, str) for i in x),
        }[want]
        if not ok(v):
            raise ValueError
    except (ValueError, TypeError):
        shown = repr(v) if len(repr(v)) <= 80 else repr(v)[:77] + "..."
        raise ParamError(
            f"parameter `{p.name}` must be {want}, got {shown}", span, f"for example {p.name}={_example(want)}"
        ) from None
    return check_value(v, span, f"parameter `{p.name}`")


def _from_text(text: str, want: str):
    text = text.strip()
    if want == "bool":
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ValueError
    if want.startswith("list"):
        items = [t.strip() for t in text.strip("[]").split(",") if t.strip()]
        return [_from_text(i, want[5:-1]) if want != "list[str]" else i.strip("'\"") for i in items]
    if want == "int":
        return int(text)
    return float(text)


def _example(want):
    return {
        "int": "16",
        "float": "0.5",
        "bool": "true",
        "str": "avg",
        "list[int]": "3,5",
        "list[float]": "0.5,1",
        "list[str]": "avg,max",
    }[want]


def check_range(p: Param, v):
    if p.choices is not None and v not in p.choices:
        raise ParamError(
            f"parameter `{p.name}` must be one of {list(p.choices)}, got {v!r}",
            p.span,
            did_you_mean(str(v), [str(c) for c in p.choices]),
        )
    if p.minimum is not None and isinstance(v, (int, float)) and not isinstance(v, bool) and v < p.minimum:
        raise ParamError(f"parameter `{p.name}` must be at least {p.minimum}, got {v}", p.span)


def eval_static(expr, lookup, known=()):
    """Evaluate a parameter expression: numbers, parameters, arithmetic, a few math builtins."""
    from . import syntax as S
    from .ops import static_builtins

    builtins = static_builtins()

    def ev(e):
        if isinstance(e, S.Num):
            return e.value
        if isinstance(e, S.Str):
            return e.value
        if isinstance(e, S.Var):
            if e.name in known:
                return lookup(e.name)
            if e.name in ("true", "false"):
                return e.name == "true"
            if e.name == "pi":
                return math.pi
            raise ParamError(
                f"unknown name `{e.name}` in a parameter expression",
                e.span,
                did_you_mean(e.name, list(known) + list(builtins)),
            )
        if isinstance(e, S.Neg):
            return -ev(e.operand)
        if isinstance(e, S.Not):
            return not ev(e.operand)
        if isinstance(e, S.IfExp):
            return ev(e.then) if ev(e.cond) else ev(e.orelse)
        if isinstance(e, S.ListExpr):
            return [ev(i) for i in e.items]
        if isinstance(e, S.Index):  # an entry of a list parameter: feat_size[0]
            base, i = ev(e.base), ev(e.index)
            if not isinstance(base, list) or not isinstance(i, int) or isinstance(i, bool):
                raise ParamError("only a list parameter can be indexed, by an int", e.span)
            if not -len(base) <= i < len(base):
                raise ParamError(f"index {i} is out of range for a list of {len(base)}", e.span)
            return base[i]
        if isinstance(e, S.BinOp):
            return arith(e.op, ev(e.left), ev(e.right), e.span)
        if isinstance(e, S.Call) and isinstance(e.func, S.Var):
            fn = builtins.get(e.func.name)
            if fn is None:
                raise ParamError(
                    f"unknown function `{e.func.name}` in a parameter expression",
                    e.func.span,
                    did_you_mean(e.func.name, builtins) or f"available: {', '.join(sorted(builtins))}",
                )
            try:
                return check_value(fn(*[ev(a) for a in e.args]), e.span, f"the result of `{e.func.name}`")
            except (TypeError, ValueError, OverflowError) as err:
                raise ParamError(f"`{e.func.name}`: {err}", e.span) from None
        raise ParamError("not allowed in a parameter expression", e.span)

    return ev(expr)


def check_default(expr, params):
    """A default expression uses only what `eval_static` knows: it is also written into generated code."""
    from . import syntax as S
    from .ops import static_builtins

    names = set(params) | {"true", "false", "pi"}
    stack = [expr]
    while stack:
        e = stack.pop()
        if isinstance(e, (S.Num, S.Str)):
            continue
        if isinstance(e, S.Var):
            if e.name not in names:
                raise ParamError(
                    f"unknown name `{e.name}` in a parameter expression",
                    e.span,
                    did_you_mean(e.name, names) or "use numbers and other parameters",
                )
        elif isinstance(e, (S.Neg, S.Not)):
            stack.append(e.operand)
        elif isinstance(e, S.IfExp):
            stack += [e.cond, e.then, e.orelse]
        elif isinstance(e, S.ListExpr):
            stack += e.items
        elif isinstance(e, S.BinOp):
            stack += [e.left, e.right]
        elif isinstance(e, S.Call) and isinstance(e.func, S.Var) and not e.kwargs:
            if e.func.name not in static_builtins():
                raise ParamError(
                    f"unknown function `{e.func.name}` in a parameter expression",
                    e.func.span,
                    f"available: {', '.join(sorted(static_builtins()))}",
                )
            stack += e.args
        else:
            raise ParamError(
                "not allowed in a parameter expression",
                e.span,
                "numbers, parameters, arithmetic and " + ", ".join(sorted(static_builtins())),
            )


COMPARISONS = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}


_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "floordiv": "//", "mod": "%", "pow": "**"}


def _number(v) -> bool:
    return isinstance(v, (int, float))


def arith(op, a, b, span=None):
    """Python arithmetic on static values, typed and bounded, with the language's error messages."""
    if op in _SYMBOLS and not (_number(a) and _number(b)):
        bad = b if _number(a) else a
        raise ParamError(
            f"`{_SYMBOLS[op]}` needs numbers, got {_kind(bad)}",
            span,
            "arithmetic works on numbers, parameters and tensors",
        )
    if (
        op in ("<", ">", "<=", ">=")
        and not (_number(a) and _number(b))
        and not (isinstance(a, str) and isinstance(b, str))
    ):
        raise ParamError(f"`{op}` compares two numbers or two strings, got {_kind(a)} and {_kind(b)}", span)
    if op == "pow" and isinstance(a, int) and isinstance(b, int) and abs(a) > 1 and (b * math.log2(abs(a)) > 54):
        raise ParamError(
            f"{a} ** {b} is too large: magnitude above 2**53",
            span,
            "numbers are limited to 2**53 (docs/language.md, Limits)",
        )
    return check_value(_arith(op, a, b, span), span, "the result")


def _arith(op, a, b, span):
    try:
        if op == "add":
            return a + b
        if op == "sub":
            return a - b
        if op == "mul":
            return a * b
        if op == "div":
            return a / b
        if op == "floordiv":
            return a // b
        if op == "mod":
            return a % b
        if op == "pow":
            return a**b
        if op in COMPARISONS:
            return COMPARISONS[op](a, b)
        if op == "and":
            return a and b
        if op == "or":
            return a or b
    except ZeroDivisionError:
        raise ParamError("division by zero", span) from None
    except OverflowError:
        raise ParamError(
            f"`{op}` overflows: the result is not a finite number",
            span,
            "numbers must be finite (docs/language.md, Limits)",
        ) from None
    except TypeError:
        raise ParamError(f"cannot apply `{op}` to {a!r} and {b!r}", span) from None
    raise ParamError(f"`{op}` needs tensors", span)


# --- loading -------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe loader that also refuses anchors and aliases (no alias bombs) and deep nesting."""

    def __init__(self, text, file, lines):
        super().__init__(text)
        self.file, self.lines, self.depth = file, lines, 0

    def compose_node(self, parent, index):
        ev = self.peek_event()
        if isinstance(ev, yaml.AliasEvent) or getattr(ev, "anchor", None) is not None:
            raise SpecError(
                "YAML anchors and aliases (`&name`, `*name`) are not allowed in a spec",
                _mark_span(self.file, self.lines, ev.start_mark),
                "write the value out where it is used",
            )
        if not isinstance(ev, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            return super().compose_node(parent, index)
        self.depth += 1
        if self.depth > limits.MAX_YAML_DEPTH:
            raise SpecError(
                f"YAML nested deeper than {limits.MAX_YAML_DEPTH} levels",
                _mark_span(self.file, self.lines, ev.start_mark),
                "docs/language.md, Limits",
            )
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_NOT_ALLOWED = yaml.reader.Reader.NON_PRINTABLE  # the characters YAML refuses in a document


def _position(text: str, index: int) -> tuple[int, int, str]:
    """1-based line and column of text[index], and that line."""
    start = max(text.rfind("\n", 0, index), text.rfind("\r", 0, index)) + 1
    line = text.count("\n", 0, index) + 1 if "\r" not in text[:index] else len(text[:start].splitlines()) + 1
    end = len(text)
    for sep in "\r\n":
        i = text.find(sep, index)
        end = min(end, i) if i >= 0 else end
    return line, index - start + 1, text[start:end]


def read_text(path: str) -> str:
    """A spec file's text: at most MAX_FILE_BYTES, UTF-8, not binary."""
    try:
        with open(path, "rb") as f:
            data = f.read(limits.MAX_FILE_BYTES + 1)
    except OSError as e:
        raise SpecError(f"cannot read spec: {e.strerror}", Span(path, 1, 1)) from None
    if len(data) > limits.MAX_FILE_BYTES:
        raise SpecError(
            f"the spec file is larger than {limits.MAX_FILE_BYTES // 1024} KiB",
            Span(path, 1, 1),
            "docs/language.md, Limits",
        )
    nul = data.find(b"\0")
    if nul >= 0:
        line, col, src = _position(data.decode("utf-8", "replace"), len(data[:nul].decode("utf-8", "replace")))
        raise SpecError(
            "this is a binary file, not a spec: it holds a NUL byte",
            Span(path, line, col, 1, _printable(src)),
            "a spec is a YAML text file in UTF-8",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        text = data.decode("utf-8", "replace")
        line, col, src = _position(text, len(data[: e.start].decode("utf-8", "replace")))
        raise SpecError(
            f"the spec file is not UTF-8 (byte 0x{data[e.start]:02x})",
            Span(path, line, col, 1, _printable(src)),
            "save the file as UTF-8",
        ) from None


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() or c == "\t" else "?" for c in text)


def _check_text(path: str, text: str) -> None:
    """Size and characters of a spec's text, before YAML sees it."""
    if len(text) > limits.MAX_FILE_BYTES:
        raise SpecError(
            f"the spec is larger than {limits.MAX_FILE_BYTES // 1024} KiB", Span(path, 1, 1), "docs/language.md, Limits"
        )
    bad = _NOT_ALLOWED.search(text)
    if bad:
        line, col, src = _position(text, bad.start())
        raise SpecError(
            f"character U+{ord(bad.group()):04X} is not allowed in a spec",
            Span(path, line, col, 1, _printable(src)),
            "a spec is a YAML text file of printable characters",
        )


def _check_tags(node, file, lines):
    std = node.tag.startswith("tag:yaml.org,2002:") and "python" not in node.tag
    if not std:
        m = node.start_mark
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise SpecError(
            f"YAML tag `{tag}` is not allowed in a spec",
            _mark_span(file, lines, m, len(tag)),
            "specs are plain data; nothing in them is run as Python",
        )
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            _check_tags(k, file, lines), _check_tags(v, file, lines)
    elif isinstance(node, yaml.SequenceNode):
        for v in node.value:
            _check_tags(v, file, lines)


def _mark_span(file, lines, mark, length=1) -> Span:
    line = mark.line + 1
    src = lines[mark.line] if mark.line < len(lines) else ""
    return Span(file, line, mark.column + 1, min(length, 200), src.rstrip("\n"))


def _collect_spans(node, file, lines, path=(), out=None):
    out = {} if out is None else out
    out[path] = _mark_span(
        file,
        lines,
        node.start_mark,
        max(1, len(str(getattr(node, "value", ""))) if isinstance(node, yaml.ScalarNode) else 1),
    )
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else "?"
            out[path + (key, "@key")] = _mark_span(file, lines, k.start_mark, len(str(key)))
            out[path + (key, "@node")] = v
            _collect_spans(v, file, lines, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _collect_spans(v, file, lines, path + (i,), out)
    return out


def _program_source(node, file, lines, text) -> Source:
    """Map a program's text back to its place in the file."""
    m = node.start_mark
    if node.style in ("|", ">"):
        # block scalar: text line 1 is the file line after the `|`, at the block's indentation
        first = m.line + 1
        while first < len(lines) and not lines[first].strip():
            first += 1
        indent = len(lines[first]) - len(lines[first].lstrip()) if first < len(lines) else 0
        return Source(file, text, m.line + 1, indent, tuple(lines))
    quote = 1 if node.style in ("'", '"') else 0
    return Source(file, text, m.line, m.column + quote, tuple(lines))


def load_spec(path: str | os.PathLike, text: str | None = None) -> Spec:
    path = str(path)
    if text is None:
        text = read_text(path)
    _check_text(path, text)
    lines = text.splitlines()
    if not text.strip():
        raise SpecError("the spec file is empty", Span(path, 1, 1), "a spec needs at least: " + ", ".join(REQUIRED))
    loader = _Loader(text, path, lines)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError("the spec file holds no YAML document", Span(path, 1, 1))
        _check_tags(node, path, lines)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        span = _mark_span(path, lines, mark) if mark else Span(path, 1, 1)
        raise SpecError(
            f"invalid YAML: {e.problem or e.context}",
            span,
            "check the brackets, quotes and indentation here and on the lines above",
        ) from None
    except yaml.YAMLError as e:
        raise SpecError(f"invalid YAML: {e}", Span(path, 1, 1)) from None
    finally:
        loader.dispose()
    spans = _collect_spans(node, path, lines)
    if not isinstance(data, dict):
        raise SpecError("a spec must be a mapping of keys (name, params, inputs, g, f, ...)", spans[()])

    def err(msg, *p, hint=None, key=False):
        sp = spans.get(tuple(p) + ("@key",)) if key else spans.get(tuple(p))
        return SpecError(msg, sp or spans[()], hint)

    for k in data:
        if k not in TOP_KEYS:
            raise err(f"unknown key `{k}`", k, key=True, hint=did_you_mean(str(k), TOP_KEYS))
    for k in REQUIRED:
        if k not in data:
            raise SpecError(f"missing key `{k}`", spans[()], f"a spec needs: {', '.join(REQUIRED)}")
    for k in ("name", "title", "family", "paper"):
        if not isinstance(data[k], str):
            raise err(f"`{k}` must be a string", k)
    stem = Path(path).stem
    check_identifier(data["name"], "spec name", spans.get(("name",)) or spans[()], spec_name=True)
    if path.endswith((".yaml", ".yml")) and data["name"] != stem:
        raise err(f"spec name `{data['name']}` differs from its file name `{stem}`", "name")
    if data["family"] not in FAMILIES:
        raise err(
            f"unknown family `{data['family']}`",
            "family",
            hint=did_you_mean(data["family"], FAMILIES) or f"families: {', '.join(FAMILIES)}",
        )

    params = {}
    if not isinstance(data.get("params") or {}, dict):
        raise err("`params` must map each parameter name to its declaration", "params")
    for name, decl in (data.get("params") or {}).items():
        check_identifier(name, "parameter name", spans.get(("params", name, "@key")) or spans[()])
        if name in RESERVED_PARAMS:
            raise err(
                f"`{name}` cannot be a parameter name",
                "params",
                name,
                key=True,
                hint=f"{', '.join(RESERVED_PARAMS)} are keywords of attndsl.build and of generated constructors",
            )
        params[name] = _param(name, decl, spans, path, lines, err)
    for p in params.values():
        if isinstance(p.default, Source):
            check_default(parse_expression(p.default), params)

    inputs = data["inputs"]
    if not isinstance(inputs, dict) or not inputs:
        raise err("`inputs` must map each input name to its shape, e.g. `x: [B, channels, H, W]`", "inputs")
    for name, shape in inputs.items():
        check_identifier(name, "input name", spans.get(("inputs", name, "@key")) or spans[()])
        if name in params:
            raise err(f"input `{name}` has the name of a parameter", "inputs", name, key=True)
        if not isinstance(shape, list) or not shape:
            raise err(f"input `{name}` needs a shape list, e.g. [B, channels, H, W]", "inputs", name)

    programs = {}
    for key in ("g", "f"):
        if key in data and data[key] is not None:
            if not isinstance(data[key], str):
                raise err(f"`{key}` must be a program (a YAML block `|`)", key)
            programs[key] = _program_source(
                spans[(key, "@node")] if (key, "@node") in spans else node, path, lines, data[key]
            )
    outputs = data["outputs"]
    if isinstance(outputs, str):
        outputs = [outputs]
    if not isinstance(outputs, list) or not outputs or not all(isinstance(o, str) for o in outputs):
        raise err("`outputs` must list output names", "outputs")
    example = data["example"]
    if not isinstance(example, dict) or "inputs" not in example:
        raise err("`example` needs `inputs` (and usually `params`)", "example")
    for k in ("params", "inputs"):
        if not isinstance(example.get(k) or {}, dict):
            raise err(
                f"`example.{k}` must be a mapping (name: value)",
                "example",
                k,
                hint="e.g. `example: {params: {channels: 64}, inputs: {x: [2, 64, 7, 9]}}`",
            )
    return Spec(
        path,
        data["name"],
        data["title"],
        data["family"],
        data["paper"],
        data.get("code", ""),
        params,
        inputs,
        programs.get("g"),
        programs["f"],
        outputs,
        example,
        list(data.get("shapes") or []),
        {k: v for k, v in spans.items() if k[-1:] != ("@node",)},
        tuple(lines),
    )


@lru_cache(maxsize=1)
def code_names() -> frozenset:
    """Names that generated code uses itself: a spec name that became a local variable would hide them."""
    runtime = Path(__file__).with_name("runtime.py").read_text(encoding="utf-8")
    helpers = {n.name for n in ast.parse(runtime).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    return frozenset(helpers | set(dir(builtins)) | {"self", "torch", "F", "nn", "math", "BatchNorm"})


def check_identifier(name, what: str, span: Span | None, spec_name: bool = False) -> None:
    """A name from a spec that generated code uses as a Python identifier (a class, an argument)."""
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
        raise SpecError(
            f"{what} {_shown(name)} is not a valid name",
            span,
            "a name is letters, digits and `_`, not starting with a digit",
        )
    if keyword.iskeyword(name):
        raise SpecError(f"{what} `{name}` is a Python keyword", span, "choose another name")
    taken = code_names()
    if spec_name:
        cls = "".join(p[:1].upper() + p[1:] for p in name.split("_"))
        if cls in taken or not cls.isidentifier() or name.startswith("_"):
            raise SpecError(
                f"{what} `{name}` gives the class name `{cls}`, which generated code already uses",
                span,
                "choose another name",
            )
    elif name in taken or name.startswith("__"):
        raise SpecError(f"{what} `{name}` is a name that generated code already uses", span, "choose another name")


def _shown(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _param(name, decl, spans, path, lines, err) -> Param:
    span = spans.get(("params", name, "@key"))
    if isinstance(decl, str):
        decl = {"type": decl}
    if not isinstance(decl, dict):
        raise err(f"parameter `{name}` must be a type (`int`) or a mapping with `type`", "params", name)
    if "choices" in decl and not isinstance(decl["choices"], list):
        raise err(f"`choices` of parameter `{name}` must be a list", "params", name, "choices")
    if "min" in decl and (not isinstance(decl["min"], (int, float)) or isinstance(decl["min"], bool)):
        raise err(f"`min` of parameter `{name}` must be a number", "params", name, "min")
    for k in decl:
        if k not in ("type", "default", "doc", "choices", "min"):
            raise err(
                f"unknown field `{k}` in parameter `{name}`",
                "params",
                name,
                k,
                key=True,
                hint=did_you_mean(str(k), ("type", "default", "doc", "choices", "min")),
            )
    typ = decl.get("type")
    if not isinstance(typ, str) or typ not in TYPES:
        raise err(
            f"parameter `{name}` has unknown type `{typ}`",
            "params",
            name,
            "type" if "type" in decl else "",
            hint=did_you_mean(str(typ), TYPES) or f"types: {', '.join(TYPES)}",
        )
    p = Param(
        name,
        typ,
        doc=str(decl.get("doc", "")),
        span=span,
        choices=tuple(decl["choices"]) if "choices" in decl else None,
        minimum=decl.get("min"),
    )
    if "default" in decl:
        p.has_default = True
        d = decl["default"]
        dspan = spans.get(("params", name, "default"))
        if isinstance(d, str) and typ in ("int", "float"):
            node = spans.get(("params", name, "default", "@node"))
            p.default = _program_source(node, path, lines, d) if node is not None else Source(path, d)
        else:
            p.default = coerce(p, d, dspan)
        p.span = dspan or span
    return p
