"""Fuzzing: whatever a spec holds, only attndsl's own errors come out.

Two generators, both derandomised with a fixed example budget (the whole file runs in
well under a minute): (a) programs built from the grammar's constructs (statements,
calls of the real op and layer names with random arguments, loops, functions,
conditions, nesting), put into a spec; (b) the shipped specs' YAML text mutated
(bytes and tokens deleted, duplicated, swapped, numbers changed, unicode inserted).
Each goes through load_spec, compile_spec, build (lowering) and generate, and a
sample through the command line; a per-example deadline catches hangs.
"""

import re
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from attndsl import cli
from attndsl.codegen import source
from attndsl.errors import AttnDSLError
from attndsl.lowering import lower
from attndsl.ops import LAYERS, OPS, static_builtins
from attndsl.pipeline import compile_spec
from attndsl.spec import load_spec

SPECS = sorted((Path(__file__).parent.parent / "specs").glob("*.yaml"))
TEXTS = [p.read_text() for p in SPECS]

FUZZ = settings(
    derandomize=True,
    deadline=timedelta(seconds=10),
    database=None,
    print_blob=True,
    suppress_health_check=list(HealthCheck),
)


def run_pipeline(path: str, text: str) -> None:
    """Everything a user can do with a spec text; only AttnDSLError may escape."""
    try:
        spec = load_spec(path, text)
        c = compile_spec(spec, spec.example.get("params") or {} if isinstance(spec.example, dict) else {}, check=True)
        gm = lower(c.graph, c.class_name)
        src = source(c, gm)
        compile(src, "generated.py", "exec")  # our own output is valid Python (not run here)
    except AttnDSLError as e:
        assert e.render()  # and it renders


# --- (a) programs from the grammar ----------------------------------------------------------

NAMES = ["x", "y", "z", "s", "a", "u", "channels", "spatial", "B", "H", "none", "true", "pi", "fc", "f"]
CALLEES = sorted(OPS) + sorted(LAYERS) + sorted(static_builtins()) + ["f", "fc", "g"]
KWARGS = sorted({k for d in list(OPS.values()) + list(LAYERS.values()) for k in d.signature.parameters})

numbers = st.one_of(
    st.integers(-3, 70).map(str), st.sampled_from(["0.5", "1e3", "10 ** 9", "2", "1", "-1", "99999999999", "1e308"])
)
strings = st.sampled_from(['"b c h w -> b (c h) w"', '"avg"', '"same"', '"ones"', '"top16"', '"x"', "''"])


def expressions(depth=3):
    leaf = st.one_of(st.sampled_from(NAMES), numbers, strings)
    if depth == 0:
        return leaf
    sub = expressions(depth - 1)
    args = st.lists(sub, max_size=4)
    kwargs = st.lists(st.tuples(st.sampled_from(KWARGS), sub), max_size=2)
    return st.one_of(
        leaf,
        st.builds(
            lambda f, a, k: f"{f}({', '.join(a + [f'{n}={v}' for n, v in dict(k).items()])})",
            st.sampled_from(CALLEES),
            args,
            kwargs,
        ),
        st.builds(
            lambda a, op, b: f"({a} {op} {b})",
            sub,
            st.sampled_from(["+", "-", "*", "/", "//", "%", "**", "@", "==", "<", "and", "or"]),
            sub,
        ),
        st.builds(lambda a: f"-{a}", sub),
        st.builds(lambda a: f"not {a}", sub),
        st.builds(lambda a, i: f"{a}[{i}]", sub, sub),
        st.builds(lambda items: "[" + ", ".join(items) + "]", st.lists(sub, max_size=3)),
        st.builds(lambda a, c, b: f"({a} if {c} else {b})", sub, sub, sub),
    )


def statements(depth=2):
    target = st.sampled_from(["y", "z", "s", "a", "u[0]", "u[i]", "fc", "g", "class", "forward", "y, z"])
    simple = st.builds(lambda t, e: f"{t} = {e}", target, expressions())
    if depth == 0:
        return simple
    body = st.lists(statements(depth - 1), min_size=1, max_size=3)
    block = body.map(lambda b: "\n".join("  " + ln for s in b for ln in s.splitlines()))
    return st.one_of(
        simple,
        st.builds(lambda e: f"def f(v) = {e}", expressions(2)),
        st.builds(lambda b, e: f"def g(v) {{\n{b}\n  return {e}\n}}", block, expressions(1)),
        st.builds(lambda n, b: f"for i in range({n}) {{\n{b}\n}}", numbers, block),
        st.builds(lambda c, b1, b2: f"if {c} {{\n{b1}\n}} else {{\n{b2}\n}}", expressions(1), block, block),
    )


def program_spec(program: str) -> str:
    body = "".join(f"  {ln}\n" for ln in program.splitlines())
    return (
        "name: fuzzed\ntitle: t\nfamily: channel\npaper: p\n"
        "params:\n  channels: {type: int, min: 1}\n  pool: {type: str, default: avg}\n"
        "inputs:\n  x: [B, channels, H, W]\n"
        f"f: |\n{body}  y = x\n"
        "outputs: [y]\nexample: {params: {channels: 8}, inputs: {x: [2, 8, 5, 5]}}\n"
    )


@settings(FUZZ, max_examples=150)
@given(st.lists(statements(), min_size=1, max_size=5))
def test_generated_programs_raise_only_attndsl_errors(stmts):
    run_pipeline("fuzz/fuzzed.spec", program_spec("\n".join(stmts)))


# --- (b) mutations of the shipped specs -------------------------------------------------------

_TOKEN = re.compile(r"\w+|[^\w\s]")
_NUMBER = re.compile(r"\d+(\.\d+)?")


@st.composite
def mutants(draw):
    text = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(1, 3))):
        n = len(text)
        i = draw(st.sampled_from(range(n))) if n else 0  # anywhere in the file, not mostly its start
        j = min(n, i + draw(st.integers(0, 40)))
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "number", "unicode", "token"]))
        if kind == "delete":
            text = text[:i] + text[j:]
        elif kind == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        elif kind == "swap":
            k = draw(st.integers(0, max(0, n - 1)))
            a, b = sorted((i, k))
            text = (
                text[:a] + text[b : b + (j - i)] + text[a + (j - i) : b] + text[a : a + (j - i)] + text[b + (j - i) :]
            )
        elif kind == "number":
            found = list(_NUMBER.finditer(text))
            if found:
                m = found[draw(st.integers(0, len(found) - 1))]
                new = draw(
                    st.sampled_from(
                        [
                            "0",
                            "-1",
                            "1",
                            "3",
                            "1000000000000",
                            "10 ** 9",
                            "2.5",
                            "1e999",
                            "99999999999999999999999",
                            ".nan",
                        ]
                    )
                )
                text = text[: m.start()] + new + text[m.end() :]
        elif kind == "unicode":
            text = (
                text[:i]
                + draw(
                    st.one_of(st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=6), st.text(max_size=3))
                )
                + text[i:]
            )
        else:
            toks = list(_TOKEN.finditer(text))
            if toks:
                m = toks[draw(st.integers(0, len(toks) - 1))]
                repl = draw(
                    st.sampled_from(
                        [
                            "",
                            m.group() * 2,
                            "&a",
                            "*a",
                            "!!python/name:os.system",
                            "[",
                            "{",
                            "'",
                            '"""',
                            "\\",
                            "\t",
                            "(",
                            "for",
                            "def",
                        ]
                    )
                )
                text = text[: m.start()] + repl + text[m.end() :]
    return text


@settings(FUZZ, max_examples=150)
@given(mutants())
def test_mutated_specs_raise_only_attndsl_errors(text):
    run_pipeline("fuzz/mutant.spec", text)


@settings(FUZZ, max_examples=12)
@given(mutants())
def test_the_command_line_reports_mutants_without_traceback(tmp_path_factory, capsys, text):
    d = tmp_path_factory.mktemp("cli")
    path = d / "mutant.spec"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    out = d / "out.py"
    rc = cli.main(["compile", str(path), "-o", str(out)])
    err = capsys.readouterr().err
    assert rc in (0, 2) and "Traceback" not in err
    assert out.exists() == (rc == 0)
