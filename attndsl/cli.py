"""Command line: `attndsl compile|check|profile|graph|list|passes|ops`.

Every attndsl error (a spec, a parameter, an argument, an output path) is
printed as `file:line:col: error: ...` with the source line and a caret,
without a traceback, and exits 2, from every command; `check` exits 1 when a
spec compiles but its built and generated modules disagree or fail to run. An
output file is written whole (to a temporary file, then renamed, with the
permissions the umask gives a new file) or not at all. Entry point: `main`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from .errors import AttnDSLError


def _params(items) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise AttnDSLError(f"parameter `{item}` must look like name=value", hint="e.g. -p channels=256")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _passes(text):
    if text is None:
        return None
    return [p for p in text.split(",") if p] if text not in ("none", "") else []


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str, text: str) -> None:
    """Write all of text to path, or leave path as it was; any failure is an AttnDSLError."""
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise AttnDSLError(f"cannot write `{path}`: it is a directory", hint="give a file name, e.g. -o block.py")
    if not parent.is_dir():
        raise AttnDSLError(f"cannot write `{path}`: there is no directory `{parent}`", hint="create it first")
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as e:
        raise AttnDSLError(f"cannot write `{path}`: {e.strerror}", hint="choose a directory you can write to") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a written module is an ordinary file
        os.replace(tmp, target)
    except OSError as e:
        os.path.exists(tmp) and os.unlink(tmp)
        raise AttnDSLError(f"cannot write `{path}`: {e.strerror}") from None
    except BaseException:
        os.path.exists(tmp) and os.unlink(tmp)
        raise


def cmd_compile(args) -> int:
    from .pipeline import compile_spec, load

    # parameters not given fall back to the spec's example (channels, mostly), then to defaults
    params = {**(load(args.spec).example.get("params") or {}), **_params(args.param)}
    passes = _passes(args.passes)
    dump = tuple(args.dump_ir or ())
    c = compile_spec(args.spec, params, passes, check=True, dump=dump)
    for stage in dump:
        if stage != "all" and stage not in c.dumps:
            raise AttnDSLError(f"no stage `{stage}` to dump", hint="stages: frontend, " + ", ".join(c.stats))
    for stage, text in c.dumps.items():
        print(f"// IR after {stage}", file=sys.stderr if args.output is None and not dump else sys.stdout)
        print(text)
    if args.output:
        from .codegen import source
        from .lowering import lower

        src = source(c, lower(c.graph, c.class_name))
        compile(src, args.output, "exec")  # a syntax check of our own output, not a run
        write_atomic(args.output, src)
        print(f"wrote {args.output}: class {c.class_name}")
        return 0
    if dump:
        return 0
    from .lowering import lower

    gm = lower(c.graph, c.class_name)
    n_params = sum(p.numel() for p in gm.parameters())
    print(f"{c.spec.name}: {c.spec.title} [{c.spec.family}]")
    print("parameters: " + ", ".join(f"{k}={v!r}" for k, v in c.params.items()))
    print(f"learned parameters: {n_params:,}")
    print(f"IR nodes: {c.nodes_before} before passes, {len(c.graph)} after")
    for name, stats in c.stats.items():
        shown = ", ".join(f"{k}={v}" for k, v in stats.items()) or "-"
        print(f"  {name}: {shown}")
    return 0


def cmd_check(args) -> int:
    from .check import check_spec

    params, rc = _params(args.param), 0
    for spec in args.spec:
        report = check_spec(spec, params)
        print(report.render())
        if report.error is not None:
            rc = 2  # a mistake in the spec or the parameters
        elif not report.ok:
            rc = rc or 1  # compiled, but the modules disagree or fail to run
    return rc


def cmd_list(args) -> int:
    from .pipeline import load
    from .registry import all_specs

    rows = []
    for name, path in all_specs().items():
        s = load(path)
        rows.append((name, s.family, s.title))
    w = max((len(r[0]) for r in rows), default=4)
    for name, fam, title in rows:
        print(f"{name:<{w}}  {fam:<16}  {title}")
    return 0


def cmd_passes(args) -> int:
    from .passes import DEFAULT_PIPELINE, PASSES

    for name, p in PASSES.items():
        print(f"{name:<16} {p.doc}{'  (default)' if name in DEFAULT_PIPELINE else ''}")
    print("default pipeline: " + ",".join(DEFAULT_PIPELINE))
    return 0


def cmd_ops(args) -> int:
    from .ops import ops_text

    sys.stdout.write(ops_text())
    return 0


def _shapes(items) -> dict:
    out = {}
    for item in items or []:
        name, _, dims = item.partition("=")
        try:
            out[name.strip()] = [int(d) for d in dims.replace("x", ",").split(",") if d.strip()]
        except ValueError:
            out[name.strip()] = None
        if not name.strip() or not out[name.strip()]:
            raise AttnDSLError(f"shape `{item}` must look like name=d0,d1,...", hint="e.g. --shape x=2,64,56,56")
    return out


def cmd_profile(args) -> int:
    from .costs import profile

    p = profile(
        args.spec,
        _shapes(args.shape),
        passes=_passes(args.passes),
        device=args.device,
        training=not args.no_backward,
        **_params(args.param),
    )
    print(p.render())
    return 0


def cmd_graph(args) -> int:
    from .graph_svg import graph_svg

    svg = graph_svg(args.spec, _params(args.param), passes=_passes(args.passes), stages=args.stage)
    if args.output in (None, "-"):
        sys.stdout.write(svg)
    else:
        write_atomic(args.output, svg)
        print(f"wrote {args.output}")
    return 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="attndsl", description="Compile attention-block specs to PyTorch modules.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compile", help="compile a spec; with -o write a standalone Python module")
    c.add_argument("spec", help="a spec file or a registered name (see `attndsl list`)")
    c.add_argument("-p", "--param", action="append", metavar="NAME=VALUE", help="set a parameter (repeatable)")
    c.add_argument("-o", "--output", help="write standalone Python code (torch only) to this file")
    c.add_argument("--passes", help="comma-separated passes to run (default: the default pipeline; 'none' for none)")
    c.add_argument(
        "--dump-ir",
        action="append",
        metavar="STAGE",
        help="print the IR after a stage: frontend, a pass name, or all (repeatable)",
    )
    c.set_defaults(fn=cmd_compile)
    k = sub.add_parser("check", help="parse, verify, build, run forward+backward, compare built vs generated code")
    k.add_argument("spec", nargs="+")
    k.add_argument("-p", "--param", action="append", metavar="NAME=VALUE")
    k.set_defaults(fn=cmd_check)
    r = sub.add_parser("profile", help="parameters, FLOPs/MACs and activation memory at given input shapes")
    r.add_argument("spec")
    r.add_argument("-p", "--param", action="append", metavar="NAME=VALUE")
    r.add_argument(
        "--shape",
        action="append",
        metavar="INPUT=D0,D1,...",
        help="an input's shape, e.g. x=2,64,56,56 (repeatable; default: the spec's example)",
    )
    r.add_argument("--passes", help="comma-separated passes (default: the default pipeline; 'none' for none)")
    r.add_argument("--device", default="meta", help="where to run the counting pass (default meta: no arithmetic)")
    r.add_argument("--no-backward", action="store_true", help="skip measuring what autograd saves for backward")
    r.set_defaults(fn=cmd_profile)
    gr = sub.add_parser("graph", help="draw the IR before and after passes as SVG (no system tools needed)")
    gr.add_argument("spec")
    gr.add_argument("-p", "--param", action="append", metavar="NAME=VALUE")
    gr.add_argument("-o", "--output", help="SVG file to write (default: standard output)")
    gr.add_argument("--passes", help="comma-separated passes (default: the default pipeline; 'none' for none)")
    gr.add_argument(
        "--stage",
        action="append",
        choices=("before", "after"),
        help="draw only this stage (repeatable; default: both side by side)",
    )
    gr.set_defaults(fn=cmd_graph)
    sub.add_parser("list", help="list the specs").set_defaults(fn=cmd_list)
    sub.add_parser("passes", help="list the passes").set_defaults(fn=cmd_passes)
    sub.add_parser("ops", help="list the ops and layers of the language").set_defaults(fn=cmd_ops)
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.fn(args)
    except AttnDSLError as e:
        print(e.render(), file=sys.stderr)
        return 2
    except BrokenPipeError:  # `attndsl ... | head`: the reader left; not an error of ours
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
