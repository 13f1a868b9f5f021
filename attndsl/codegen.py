"""Code generation: a compiled spec -> a standalone Python module (torch only).

Input: the lowered fx graph and the IR's layer declarations. Output: source
text defining one `nn.Module` class named after the spec, whose constructor
takes the spec's parameters with their defaults and builds the same
submodules (same state-dict keys) as `attndsl.build`, and whose forward is
the same fx graph written out line by line, each block under the spec line it
came from. Helpers from `attndsl.runtime` are copied in. Entry points: `generate`,
and `source` for a spec already compiled and lowered.
"""

from __future__ import annotations

import builtins
import inspect
import keyword
import operator
import textwrap

from torch import fx

from . import runtime, syntax as S
from .layers import BatchNorm, init_source, layer_source
from .lowering import BUFFERS, INFIX, SPATIAL_AXES, input_dims, layer_ranks, lower, source_name
from .passes.inplace import inplace_call, inplace_nodes
from .pipeline import compile_spec

_PYFUNCS = {"floor": "math.floor", "ceil": "math.ceil", "log": "math.log", "log2": "math.log2", "sqrt": "math.sqrt"}
from .frontend import _PYOPS, _names, multiple_of  # noqa: E402  (one spelling of each operator, shared with the frontend)


def render_expr(e) -> str:
    """A parameter default expression as Python source."""
    if isinstance(e, S.Num):
        return repr(e.value)
    if isinstance(e, S.Str):
        return repr(e.value)
    if isinstance(e, S.Var):
        return {"true": "True", "false": "False", "pi": "math.pi"}.get(e.name, e.name)
    if isinstance(e, S.Neg):
        return f"(-{render_expr(e.operand)})"
    if isinstance(e, S.Not):
        return f"(not {render_expr(e.operand)})"
    if isinstance(e, S.IfExp):
        return f"({render_expr(e.then)} if {render_expr(e.cond)} else {render_expr(e.orelse)})"
    if isinstance(e, S.BinOp):
        return f"({render_expr(e.left)} {_PYOPS[e.op]} {render_expr(e.right)})"
    if isinstance(e, S.ListExpr):
        return "[" + ", ".join(render_expr(i) for i in e.items) + "]"
    if isinstance(e, S.Index):
        return f"{render_expr(e.base)}[{render_expr(e.index)}]"
    if isinstance(e, S.Call):
        args = [render_expr(a) for a in e.args]
        if e.func.name == "odd":
            return f"({args[0]} | 1)"
        return f"{_PYFUNCS.get(e.func.name, e.func.name)}({', '.join(args)})"
    raise ValueError(f"cannot render {e!r}")


def _strip(src: str) -> str:
    return src[1:-1] if src.startswith("(") and src.endswith(")") and _balanced(src[1:-1]) else src


def _balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0


def _attr_ref(path: str, containers: dict) -> str:
    """self.conv[0] for a ModuleList member, self.fc1 otherwise."""
    head, *rest = path.split(".")
    out = f"self.{head}"
    for part in rest:
        out += f"[{part}]" if containers.get(head) == "list" else f"[{part!r}]"
    return out


def _containers(names) -> dict:
    groups: dict = {}
    for name in names:
        if "." in name:
            head, idx = name.split(".", 1)
            groups.setdefault(head, []).append(idx)
    return {h: "list" if [str(i) for i in range(len(ix))] == ix else "dict" for h, ix in groups.items()}


# names a local variable of forward must not take: they would hide a module-level name or a builtin
_RESERVED = (
    {n for n, v in vars(runtime).items() if callable(v)}
    | set(dir(builtins))
    | {"torch", "F", "nn", "math", "self", "BatchNorm"}
)


def _local(node: fx.Node) -> str:
    name = node.name
    return name + "_" if name in _RESERVED or keyword.iskeyword(name) else name


# Spec text (title, paper, path, source lines) reaches generated code only through these two:
# nothing in it can end a docstring or a comment, and every character that is not printable
# (line ends the tokenizer knows, NUL, line separators) is written as an escape.
def doc_text(text: str) -> str:
    """Text safe inside a triple-quoted docstring: backslashes and quotes escaped, non-printables as escapes."""
    out = []
    for ch in str(text):
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ascii(ch)[1:-1])
    return "".join(out)


def comment_text(text: str) -> str:
    """Text safe after `#`: one line of printable characters."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(text))


_CTOR_INPLACE = object()  # stands for the generated constructor's `inplace` in a call's arguments


class _Writer:
    def __init__(self, gm: fx.GraphModule, containers: dict):
        self.gm, self.containers = gm, containers
        self.helpers: list = []
        self.inplace = inplace_nodes(gm.graph)[0]  # nodes the constructor's inplace=True writes into x

    def arg(self, a) -> str:
        if isinstance(a, fx.Node):
            return _local(a)
        if isinstance(a, tuple):
            inner = ", ".join(self.arg(x) for x in a)
            return f"({inner},)" if len(a) == 1 else f"({inner})"
        if isinstance(a, list):
            return "[" + ", ".join(self.arg(x) for x in a) + "]"
        return repr(a)

    def call(self, fn, args, kwargs) -> str:
        parts = [self.arg(a) for a in args] + [f"{k}={self.arg(v)}" for k, v in kwargs.items()]
        if fn in INFIX:
            return f"{self.arg(args[0])} {INFIX[fn]} {self.arg(args[1])}"
        if fn is operator.getitem:
            return f"{self.arg(args[0])}[{self.arg(args[1])}]"
        if fn is operator.neg:
            return f"-{self.arg(args[0])}"
        if fn in (runtime.gate, runtime.mul_into) and "inplace" in kwargs:  # the constructor's choice
            parts[-1] = "inplace=self._attndsl_inplace"
        if getattr(fn, "__module__", None) == runtime.__name__:
            self.need(fn.__name__)
            return f"{fn.__name__}({', '.join(parts)})"
        name = source_name(fn)
        if name is None:
            raise ValueError(f"no source name for {fn}")
        return f"{name}({', '.join(parts)})"

    def need(self, name: str):
        for dep in runtime.NEEDS.get(name, []):
            self.need(dep)
        if name not in self.helpers:
            self.helpers.append(name)

    def forward(self) -> list[str]:
        lines, args, last_line = [], [], None
        for node in self.gm.graph.nodes:
            span = node.meta.get("span")
            if span is not None and span.line != last_line and node.op not in ("placeholder", "output"):
                lines.append(f"# {comment_text(span.source_line.strip())}")
                last_line = span.line
            name = _local(node)
            if node.op == "placeholder":
                args.append(name)
            elif node.op == "get_attr":
                layers, (owner, _, attr) = self.gm.meta["ir"].layers, node.target.rpartition(".")
                if node.target not in layers and owner in layers:  # a layer's own tensor (fuse_projections)
                    lines.append(f"{name} = {_attr_ref(owner, self.containers)}.{attr}")
                else:
                    lines.append(f"{name} = {_attr_ref(node.target, self.containers)}")
            elif node.op == "call_module":
                lines.append(f"{name} = {_attr_ref(node.target, self.containers)}({self.arg(node.args[0])})")
            elif node.op == "call_function" and node.target is runtime.check_input_shapes:
                continue  # written by `input_check_source`, over the constructor's parameters
            elif node.op == "call_function" and node in self.inplace:  # where inplace=True may write into x
                lines.append(f"{name} = {self.call(*inplace_call(node, self.inplace[node], _CTOR_INPLACE))}")
            elif node.op == "call_function":
                lines.append(f"{name} = {self.call(node.target, node.args, node.kwargs)}")
            elif node.op == "call_method":
                rest = ", ".join(self.arg(a) for a in node.args[1:])
                lines.append(f"{name} = {self.arg(node.args[0])}.{node.target}({rest})")
            elif node.op == "output":
                out = node.args[0]
                lines.append(
                    "return " + (", ".join(self.arg(o) for o in out) if isinstance(out, tuple) else self.arg(out))
                )
        return ["def forward(self, " + ", ".join(args) + "):"] + ["    " + ln for ln in lines]


def _shown_path(path: str) -> str:
    """The spec's path as a user would type it: relative to the working directory when inside it."""
    import os

    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def generate(spec, passes=None, **params) -> str:
    """Compile a spec and write its standalone module."""
    c = compile_spec(spec, params, passes)
    return source(c, lower(c.graph, c.class_name))


def source(c, gm: fx.GraphModule) -> str:
    """The standalone module of a compiled spec `c`, from its lowered graph `gm`."""
    sp, graph = c.spec, c.graph
    ranks = layer_ranks(graph)
    buffers = gm.meta["buffers"]
    containers = _containers(list(graph.layers))
    w = _Writer(gm, containers)

    # constructor signature: every spec parameter, with its default
    sig, prologue = ["self"], []
    for name, p in sp.params.items():
        ann = {"int": "int", "float": "float", "bool": "bool", "str": "str"}.get(p.type, "list")
        if not p.has_default:
            sig.append(f"{name}: {ann}")
        elif isinstance(p.default, S.Source):
            sig.append(f"{name}: {ann} | None = None")
            expr = _strip(render_expr(S.parse_expression(p.default)))
            prologue += [f"if {name} is None:", f"    {name} = {expr}"]
        else:
            sig.append(f"{name}: {ann} = {p.default!r}")
    sig += ["*", "check_inputs: bool = True", "inplace: bool = False"]
    fixed = graph.meta.get("fixed", [])
    if fixed:
        vals = ", ".join(f"{k}={c.params[k]!r}" for k in fixed)
        cond = " or ".join(f"{k} != {c.params[k]!r}" for k in fixed)
        message = (
            f"this module was generated for {vals}; regenerate it with "
            f"`attndsl compile {_shown_path(sp.path)} -p ...` for other values"
        )
        prologue += [f"if {cond}:", f"    raise ValueError({message!r})"]
    body = prologue + input_check_source(c) + ["self._attndsl_inplace = inplace"]
    made = set()
    for name, decl in graph.layers.items():
        head = name.split(".")[0]
        if head in containers and head not in made:
            made.add(head)
            kind = "Parameter" if decl.kind == "param" else "Module"
            body.append(f"self.{head} = nn.{kind}{'List' if containers[head] == 'list' else 'Dict'}()")
        src = layer_source(decl.kind, decl.args, {k: _strip(v) for k, v in decl.exprs.items()}, ranks.get(name))
        if src.startswith("BatchNorm("):  # the any-rank batch norm is attndsl's own class
            w.need("BatchNorm")
        if head in containers:
            body.append(
                f"self.{head}.append({src})"
                if containers[head] == "list"
                else f"self.{head}[{name.split('.', 1)[1]!r}] = {src}"
            )
        else:
            body.append(f"self.{name} = {src}")
        body += init_source(
            decl.kind,
            decl.args,
            _attr_ref(name, containers),
            name,
            graph.layers,
            lambda path: _attr_ref(path, containers),
        )
    for bname, n in buffers.items():
        fn, argnames = BUFFERS[n["op"]]
        exprs = n.get("exprs", {})
        w.need(fn.__name__)
        args = ", ".join(_strip(exprs[k]) if k in exprs else repr(n["attrs"][k]) for k in argnames)
        body.append(f"self.register_buffer({bname!r}, {fn.__name__}({args}))")
    forward = w.forward()
    w.need("check_input_shapes")
    args = ", ".join(_local(n) for n in gm.graph.nodes if n.op == "placeholder")
    forward[1:1] = [
        "    if self._attndsl_inputs is not None:",
        f"        check_input_shapes(self._attndsl_inputs, {args})",
    ]

    helpers = []
    for h in w.helpers:
        obj = BatchNorm if h == "BatchNorm" else getattr(runtime, h)
        text = textwrap.dedent(inspect.getsource(obj))
        if text.startswith("@leaf\n"):  # the standalone file says the same with torch.fx.wrap
            text = text[len("@leaf\n") :].rstrip() + f"\n\n\ntorch.fx.wrap({h!r})\n"
        if h == "check_input_shapes":  # its node has no users: dead-code passes must keep it
            text += f"torch.fx.node.has_side_effect({h})\n"
        helpers.append(text)
    doc = [
        f'"""{doc_text(sp.title)} ({sp.name}): generated by attndsl from {doc_text(_shown_path(sp.path))}.',
        "",
        *[doc_text(ln) for ln in textwrap.wrap(sp.paper, 96)],
        "",
        "Compiled with " + ", ".join(f"{k}={v!r}" for k, v in c.params.items()) + ".",
    ]
    if fixed:
        doc.append("Fixed in this file (other values need a new compile): " + ", ".join(fixed) + ".")
    doc.append('"""')
    imports = ["import math", "", "import torch", "import torch.nn.functional as F", "from torch import nn"]
    out = doc + imports + ["", ""]
    for h in helpers:
        out += h.rstrip().splitlines() + ["", ""]
    out += [
        f"class {c.class_name}(nn.Module):",
        f'    """{doc_text(sp.title)}: inputs {", ".join(sp.inputs)}; outputs {", ".join(sp.outputs)}."""',
        "",
        f"    def __init__({', '.join(sig)}):",
        "        super().__init__()",
    ]
    out += ["        " + ln for b in body for ln in b.splitlines()]
    out += [""] + ["    " + ln for ln in forward]
    return "\n".join(out).rstrip() + "\n"


# --- run-time input checks ------------------------------------------------------------------


def input_check_source(c) -> list[str]:
    """Constructor lines storing what forward checks: the inputs' axes as expressions of the parameters."""
    params = c.params
    entries = []
    for name, dims in input_dims(c.graph):
        values = _tuple([_dim_source(d, params) for d in dims])
        notes = _tuple([_tuple([f"({k!r}, {k})" for k in d.params]) for d in dims])
        pack = any(isinstance(d.value, str) and d.value.startswith("*") for d in dims)
        entries.append(f"    ({name!r}, {values}, {notes}, {SPATIAL_AXES if pack else None!r}),")
    return (
        [f"self._attndsl_inputs = None if not check_inputs else {{'spec': {c.spec.name!r}, 'inputs': ("]
        + entries
        + [")}"]
    )


def _tuple(items: list) -> str:
    return f"({items[0]},)" if len(items) == 1 else "(" + ", ".join(items) + ")"


def _dim_source(d, params: dict) -> str:
    """An axis's declared size as Python over the constructor's parameters; a symbol as its name."""
    if isinstance(d.value, tuple):  # `k * n`: (k over the parameters, "n")
        factor, symbol = multiple_of(S.parse_expression(S.Source("<input>", d.text)), params)
        return f"({_strip(render_expr(factor))}, {symbol!r})"
    if isinstance(d.value, str) or not isinstance(d.text, str):
        return repr(d.value)
    expr = S.parse_expression(S.Source("<input>", d.text))
    if not _over_params(expr, params):
        return repr(d.value)
    return _strip(render_expr(_symbols_as_names(expr, params)))


def _over_params(e, params) -> bool:
    """Whether e is a parameter expression, or a parameter condition choosing between such and a symbol."""

    def static(x):
        return all(n in params or n in ("true", "false") for n in _names(x))

    if isinstance(e, S.IfExp):
        return static(e.cond) and _over_params(e.then, params) and _over_params(e.orelse, params)
    return isinstance(e, S.Var) or static(e)


def _symbols_as_names(e, params):
    """e with every symbol (a name that is no parameter) as a string: the check's spelling of a shared size."""
    import dataclasses

    if isinstance(e, S.Var) and e.name not in params and e.name not in ("true", "false", "pi"):
        return S.Str(e.span, e.name)
    if isinstance(e, S.IfExp):
        return dataclasses.replace(
            e, then=_symbols_as_names(e.then, params), orelse=_symbols_as_names(e.orelse, params)
        )
    return e
