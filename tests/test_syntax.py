"""Parser tables: programs that parse to the expected tree, and programs that fail with the expected error."""

import pytest

from attndsl import syntax as S
from attndsl.errors import ParseError
from attndsl.syntax import Source, parse_expression, parse_program


def prog(text):
    return parse_program(Source("t.yaml", text))


def show(e):
    """A compact, readable rendering of an AST, for table tests."""
    if isinstance(e, S.Num):
        return repr(e.value)
    if isinstance(e, S.Str):
        return repr(e.value)
    if isinstance(e, S.Var):
        return e.name
    if isinstance(e, S.ListExpr):
        return "[" + ", ".join(show(i) for i in e.items) + "]"
    if isinstance(e, S.BinOp):
        return f"{e.op}({show(e.left)}, {show(e.right)})"
    if isinstance(e, S.Neg):
        return f"neg({show(e.operand)})"
    if isinstance(e, S.Call):
        args = [show(a) for a in e.args] + [f"{k}={show(v)}" for k, (v, _) in e.kwargs.items()]
        return f"{show(e.func)}({', '.join(args)})"
    if isinstance(e, S.Index):
        return f"{show(e.base)}[{show(e.index)}]"
    if isinstance(e, S.Assign):
        ts = ", ".join(t.name + (f"[{show(t.index)}]" if t.index else "") for t in e.targets)
        return f"{ts} = {show(e.value)}"
    if isinstance(e, S.Def):
        return f"def {e.name}({', '.join(e.params)}) {{{'; '.join(show(s) for s in e.body)}}}"
    if isinstance(e, S.For):
        return f"for {e.var} in {show(e.iterable)} {{{'; '.join(show(s) for s in e.body)}}}"
    if isinstance(e, S.Return):
        return "return " + ", ".join(show(v) for v in e.values)
    if isinstance(e, S.If):
        body = "; ".join(show(st) for st in e.then)
        other = "; ".join(show(st) for st in e.orelse)
        return f"if {show(e.cond)} {{{body}}}" + (f" else {{{other}}}" if e.orelse else "")
    if isinstance(e, S.IfExp):
        return f"ifexp({show(e.cond)}, {show(e.then)}, {show(e.orelse)})"
    if isinstance(e, S.Not):
        return f"not({show(e.operand)})"
    raise TypeError(e)


VALID = [
    ("y = x", ["y = x"]),
    ("y = a + b * c", ["y = add(a, mul(b, c))"]),
    ("y = (a + b) * c", ["y = mul(add(a, b), c)"]),
    ("y = a - b - c", ["y = sub(sub(a, b), c)"]),
    ("y = a @ b * c", ["y = mul(matmul(a, b), c)"]),
    ("y = -a ** 2", ["y = neg(pow(a, 2))"]),
    ("y = a ** -0.5", ["y = pow(a, neg(0.5))"]),
    ("y = c // r % 2", ["y = mod(floordiv(c, r), 2)"]),
    ("y = 1e-5 + .5 + 3.", ["y = add(add(1e-05, 0.5), 3.0)"]),
    ("y = f(x, 2, dim=-1)", ["y = f(x, 2, dim=neg(1))"]),
    ("y = f(x,)", ["y = f(x)"]),
    ("y = f()", ["y = f()"]),
    ("y = conv[i](x)", ["y = conv[i](x)"]),
    ('y = rearrange(x, "b c h w -> b (h w) c", g=4)', ["y = rearrange(x, 'b c h w -> b (h w) c', g=4)"]),
    ("y = [a, b, 3]", ["y = [a, b, 3]"]),
    ("a, b = split(x, 2)", ["a, b = split(x, 2)"]),
    ("u[i] = f(x)", ["u[i] = f(x)"]),
    ("y = f(x,\n      dim=1)\n", ["y = f(x, dim=1)"]),
    ("# only a comment\n\ny = x  # trailing\n", ["y = x"]),
    ("def mlp(v) = fc2(relu(fc1(v)))", ["def mlp(v) {return fc2(relu(fc1(v)))}"]),
    ("def f(a, b) {\n  c = a + b\n  return c, a\n}", ["def f(a, b) {c = add(a, b); return c, a}"]),
    ("for i in range(3) {\n  u[i] = f(i)\n}\ny = u", ["for i in range(3) {u[i] = f(i)}", "y = u"]),
    ("if bn {\n  a = f(a)\n}\ny = a", ["if bn {a = f(a)}", "y = a"]),
    ("if k > 1 {\n  y = a\n} else {\n  y = b\n}", ["if >(k, 1) {y = a} else {y = b}"]),
    ("y = a if c == 2 else b", ["y = ifexp(==(c, 2), a, b)"]),
    ("y = not a and b or c", ["y = or(and(not(a), b), c)"]),
    ("y = f(x, bias=not bn)", ["y = f(x, bias=not(bn))"]),
    ("y = x; z = y", None),  # no `;`: checked in INVALID
]


@pytest.mark.parametrize("text,expected", [v for v in VALID if v[1] is not None])
def test_valid_programs(text, expected):
    assert [show(s) for s in prog(text)] == expected


INVALID = [
    ("y = relu(x", 1, "unexpected end of program"),
    ("y = x +* 2", 1, "unexpected `*`"),
    ("y = x $ 2", 1, "unexpected character `$`"),
    ("y relu(x)", 1, "unexpected `relu`"),
    ("y = x; z = y", 1, "unexpected character `;`"),
    ("y = f(a=1, 2)", 1, "positional argument after keyword arguments"),
    ("y = f(a=1, a=2)", 1, "keyword argument `a` given twice"),
    ("def f(a) {\n  b = a\n}", 1, "function `f` must end with `return`"),
    ("y = x\n  z = \n", 2, "unexpected end of line"),
    ("for i in 3 {\n y = x\n", 2, "unexpected end of program"),
    ("if a {\n y = x\n}\nelse {\n y = z\n}", 4, "unexpected `{`"),
]


@pytest.mark.parametrize("text,line,message", INVALID)
def test_invalid_programs(text, line, message):
    with pytest.raises(ParseError) as info:
        prog(text)
    assert message in info.value.message
    assert info.value.span.line == line


def test_positions_map_into_the_file():
    src = Source(
        "spec.yaml",
        "y = x\nz = sigmoidd(y)\n",
        line0=10,
        col0=2,
        file_lines=tuple([""] * 10 + ["  y = x", "  z = sigmoidd(y)"]),
    )
    stmt = parse_program(src)[1]
    assert (stmt.value.func.span.line, stmt.value.func.span.col) == (12, 7)
    assert stmt.value.func.span.source_line == "  z = sigmoidd(y)"


def test_parameter_expressions():
    e = parse_expression(Source("t", "odd(int(abs((log2(channels) + b) / gamma)))"))
    assert show(e) == "odd(int(abs(div(add(log2(channels), b), gamma))))"
