"""Load a spec file: safe YAML with source positions, typed parameters.

Input: a path (or text). Output: a `Spec` with its metadata, parameter
declarations, inputs, programs (as `Source`s that remember where they sit in
the file) and example. `Spec.resolve(**values)` checks and completes parameter
values, evaluating default expressions. Nothing is executed as Python: YAML is
composed with the safe loader and any Python-object tag is refused.
Entry points: `load_spec`, `Spec.resolve`.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import AttnDSLError, ParamError, SpecError, Span, did_you_mean
from .syntax import Source, parse_expression

TOP_KEYS = ("name", "title", "family", "paper", "code", "notes", "params", "inputs", "g", "f", "outputs",
            "example", "shapes", "maps")
REQUIRED = ("name", "title", "family", "paper", "inputs", "f", "outputs", "example")
FAMILIES = ("channel", "spatial", "temporal", "branch", "channel_spatial", "spatial_temporal")
TYPES = {"int": int, "float": float, "bool": bool, "str": str, "list[int]": list, "list[str]": list,
         "list[float]": list}


@dataclass
class Param:
    name: str
    type: str
    default: object = None      # a value, or a Source holding an expression
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
    params: dict                 # name -> Param, in file order
    inputs: dict                 # name -> list of dim texts
    g: Source | None
    f: Source
    outputs: list
    example: dict
    shapes: list = field(default_factory=list)   # extra input-shape sets for tests
    spans: dict = field(default_factory=dict)    # key path -> Span
    lines: tuple = ()

    def span(self, *path) -> Span | None:
        return self.spans.get(tuple(path))

    def resolve(self, **values) -> dict:
        """Every parameter's value: the given ones checked, the others from defaults."""
        for k in values:
            if k not in self.params:
                raise ParamError(f"`{self.name}` has no parameter `{k}`", self.span("params"),
                                 did_you_mean(k, self.params) or f"parameters: {', '.join(self.params)}")
        out: dict = {}
        busy: set = set()

        def get(name):
            if name in out:
                return out[name]
            p = self.params[name]
            if name in values:
                v = coerce(p, values[name])
            elif not p.has_default:
                raise ParamError(f"parameter `{name}` of `{self.name}` has no default and was not given", p.span,
                                 f"pass it, e.g. `-p {name}=...` or build(\"{self.name}\", {name}=...)")
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
            "list[int]": lambda x: isinstance(x, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in x),
            "list[float]": lambda x: isinstance(x, list) and all(isinstance(i, (int, float)) for i in x),
            "list[str]": lambda x: isinstance(x, list) and all(isinstance(i, str) for i in x),
        }[want]
        if not ok(v):
            raise ValueError
    except (ValueError, TypeError):
        raise ParamError(f"parameter `{p.name}` must be {want}, got {v!r}", span,
                         f"for example {p.name}={_example(want)}") from None
    return v


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
    return {"int": "16", "float": "0.5", "bool": "true", "str": "avg", "list[int]": "3,5",
            "list[float]": "0.5,1", "list[str]": "avg,max"}[want]


def check_range(p: Param, v):
    if p.choices is not None and v not in p.choices:
        raise ParamError(f"parameter `{p.name}` must be one of {list(p.choices)}, got {v!r}", p.span,
                         did_you_mean(str(v), [str(c) for c in p.choices]))
    if p.minimum is not None and isinstance(v, (int, float)) and v < p.minimum:
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
            raise ParamError(f"unknown name `{e.name}` in a parameter expression", e.span,
                             did_you_mean(e.name, list(known) + list(builtins)))
        if isinstance(e, S.Neg):
            return -ev(e.operand)
        if isinstance(e, S.Not):
            return not ev(e.operand)
        if isinstance(e, S.IfExp):
            return ev(e.then) if ev(e.cond) else ev(e.orelse)
        if isinstance(e, S.ListExpr):
            return [ev(i) for i in e.items]
        if isinstance(e, S.BinOp):
            return arith(e.op, ev(e.left), ev(e.right), e.span)
        if isinstance(e, S.Call) and isinstance(e.func, S.Var):
            fn = builtins.get(e.func.name)
            if fn is None:
                raise ParamError(f"unknown function `{e.func.name}` in a parameter expression", e.func.span,
                                 did_you_mean(e.func.name, builtins) or f"available: {', '.join(sorted(builtins))}")
            try:
                return fn(*[ev(a) for a in e.args])
            except (TypeError, ValueError) as err:
                raise ParamError(f"`{e.func.name}`: {err}", e.span) from None
        raise ParamError("not allowed in a parameter expression", e.span)

    return ev(expr)


COMPARISONS = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
               ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b}


def arith(op, a, b, span=None):
    """Python arithmetic on static values, with the language's error messages."""
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
            return a ** b
        if op in COMPARISONS:
            return COMPARISONS[op](a, b)
        if op == "and":
            return a and b
        if op == "or":
            return a or b
    except ZeroDivisionError:
        raise ParamError("division by zero", span) from None
    except TypeError:
        raise ParamError(f"cannot apply `{op}` to {a!r} and {b!r}", span) from None
    raise ParamError(f"`{op}` needs tensors", span)


# --- loading -------------------------------------------------------------------------------

class _Loader(yaml.SafeLoader):
    """Safe loader that also refuses every tag outside the YAML core schema."""


def _check_tags(node, file, lines):
    std = node.tag.startswith("tag:yaml.org,2002:") and "python" not in node.tag
    if not std:
        m = node.start_mark
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise SpecError(f"YAML tag `{tag}` is not allowed in a spec", _mark_span(file, lines, m, len(tag)),
                        "specs are plain data; nothing in them is run as Python")
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            _check_tags(k, file, lines), _check_tags(v, file, lines)
    elif isinstance(node, yaml.SequenceNode):
        for v in node.value:
            _check_tags(v, file, lines)


def _mark_span(file, lines, mark, length=1) -> Span:
    line = mark.line + 1
    src = lines[mark.line] if mark.line < len(lines) else ""
    return Span(file, line, mark.column + 1, length, src.rstrip("\n"))


def _collect_spans(node, file, lines, path=(), out=None):
    out = {} if out is None else out
    out[path] = _mark_span(file, lines, node.start_mark, max(1, len(str(getattr(node, "value", "")))
                                                         if isinstance(node, yaml.ScalarNode) else 1))
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value
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
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise SpecError(f"cannot read spec: {e.strerror}", Span(path, 1, 1)) from None
    lines = text.splitlines()
    if not text.strip():
        raise SpecError("the spec file is empty", Span(path, 1, 1),
                        "a spec needs at least: " + ", ".join(REQUIRED))
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError("the spec file holds no YAML document", Span(path, 1, 1))
        _check_tags(node, path, lines)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        span = _mark_span(path, lines, mark) if mark else Span(path, 1, 1)
        raise SpecError(f"invalid YAML: {e.problem or e.context}", span,
                        "check the brackets, quotes and indentation here and on the lines above") from None
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
    if path.endswith((".yaml", ".yml")) and data["name"] != stem:
        raise err(f"spec name `{data['name']}` differs from its file name `{stem}`", "name")
    if data["family"] not in FAMILIES:
        raise err(f"unknown family `{data['family']}`", "family",
                  hint=did_you_mean(data["family"], FAMILIES) or f"families: {', '.join(FAMILIES)}")

    params = {}
    for name, decl in (data.get("params") or {}).items():
        params[name] = _param(name, decl, spans, path, lines, err)

    inputs = data["inputs"]
    if not isinstance(inputs, dict) or not inputs:
        raise err("`inputs` must map each input name to its shape, e.g. `x: [B, channels, H, W]`", "inputs")
    for name, shape in inputs.items():
        if not isinstance(shape, list) or not shape:
            raise err(f"input `{name}` needs a shape list, e.g. [B, channels, H, W]", "inputs", name)

    programs = {}
    for key in ("g", "f"):
        if key in data and data[key] is not None:
            if not isinstance(data[key], str):
                raise err(f"`{key}` must be a program (a YAML block `|`)", key)
            programs[key] = _program_source(spans[(key, "@node")] if (key, "@node") in spans else node,
                                            path, lines, data[key])
    outputs = data["outputs"]
    if isinstance(outputs, str):
        outputs = [outputs]
    if not isinstance(outputs, list) or not outputs or not all(isinstance(o, str) for o in outputs):
        raise err("`outputs` must list output names", "outputs")
    example = data["example"]
    if not isinstance(example, dict) or "inputs" not in example:
        raise err("`example` needs `inputs` (and usually `params`)", "example")
    return Spec(path, data["name"], data["title"], data["family"], data["paper"], data.get("code", ""),
                params, inputs, programs.get("g"), programs["f"], outputs, example,
                list(data.get("shapes") or []), {k: v for k, v in spans.items() if k[-1:] != ("@node",)},
                tuple(lines))


def _param(name, decl, spans, path, lines, err) -> Param:
    span = spans.get(("params", name, "@key"))
    if isinstance(decl, str):
        decl = {"type": decl}
    if not isinstance(decl, dict):
        raise err(f"parameter `{name}` must be a type (`int`) or a mapping with `type`", "params", name)
    for k in decl:
        if k not in ("type", "default", "doc", "choices", "min"):
            raise err(f"unknown field `{k}` in parameter `{name}`", "params", name, k, key=True,
                      hint=did_you_mean(str(k), ("type", "default", "doc", "choices", "min")))
    typ = decl.get("type")
    if typ not in TYPES:
        raise err(f"parameter `{name}` has unknown type `{typ}`", "params", name, "type" if "type" in decl else "",
                  hint=did_you_mean(str(typ), TYPES) or f"types: {', '.join(TYPES)}")
    p = Param(name, typ, doc=str(decl.get("doc", "")), span=span,
              choices=tuple(decl["choices"]) if "choices" in decl else None, minimum=decl.get("min"))
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
