"""The torch module protocol, checked on one spec's built or generated module.

A `Case` holds the block (eval mode) at the spec's example params, its example inputs at batch 2
and the same shapes at batch 3 (every input whose first axis is the batch symbol `B`). Each check
in `CHECKS` takes a case and raises on failure; `export` and `onnx_dynamo` share one
`torch.export` program through the case. Run as a script, it prints the pass counts per column:

    python3 -m tests.module_protocol [spec ...]
"""

from __future__ import annotations

import copy
import importlib
import io
import pickle
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn

import attndsl
from attndsl.check import example_inputs
from attndsl.pipeline import load

BATCH = "B"
OTHER_BATCH = 3
EXACT = {
    "atol": 1e-5,
    "rtol": 1e-5,
}  # same function: only the summation order may differ (float32 sums of ~100s of terms)
ONNX_TOL = {"atol": 1e-4, "rtol": 1e-4}


class Host1(nn.Module):
    """A user's model holding the block (one class per arity: fx needs named forward arguments)."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, a):
        return self.block(a)


class Host2(Host1):
    def forward(self, a, b):
        return self.block(a, b)


class Host3(Host1):
    def forward(self, a, b, c):
        return self.block(a, b, c)


class Host4(Host1):
    def forward(self, a, b, c, d):
        return self.block(a, b, c, d)


HOSTS = {1: Host1, 2: Host2, 3: Host3, 4: Host4}
_GENERATED_DIR = None


def _generated_dir() -> Path:
    """One temporary directory on sys.path for the generated files, so pickle can import their classes."""
    global _GENERATED_DIR
    if _GENERATED_DIR is None:
        _GENERATED_DIR = Path(tempfile.mkdtemp(prefix="attndsl_protocol_"))
        sys.path.insert(0, str(_GENERATED_DIR))
        import atexit
        import shutil

        atexit.register(shutil.rmtree, _GENERATED_DIR, True)
    return _GENERATED_DIR


def generated_class(name: str, params: dict):
    """The generated module's class, imported from a real file as `attndsl_gen_<name>`."""
    module = f"attndsl_gen_{name}"
    (_generated_dir() / f"{module}.py").write_text(attndsl.generate(name, **params))
    sys.modules.pop(module, None)
    importlib.invalidate_caches()
    return getattr(importlib.import_module(module), attndsl.compile_spec(name, params).class_name)


class Case:
    def __init__(self, name: str, kind: str):
        self.name, self.kind = name, kind
        spec = load(name)
        params = dict(spec.example.get("params") or {})
        torch.manual_seed(0)
        built = attndsl.build(name, **params)
        if kind == "built":
            self.block = built
        else:
            self.block = generated_class(name, params)(**params)
            self.block.load_state_dict(built.state_dict())
        self.block.eval()
        shapes = spec.example["inputs"]
        self.batched = [bool(spec.inputs[n]) and spec.inputs[n][0] == BATCH for n in spec.inputs]
        self.inputs = example_inputs(spec, shapes, seed=1)
        other = {n: ([OTHER_BATCH] + list(s[1:]) if b else list(s)) for (n, s), b in zip(shapes.items(), self.batched)}
        self.other_inputs = example_inputs(spec, other, seed=2)
        self.input_names = list(spec.inputs)
        self._expected = {}
        self._exported = None

    def host(self, block=None):
        return HOSTS[len(self.inputs)](self.block if block is None else block).eval()

    def expected(self, which="inputs"):
        if which not in self._expected:
            with torch.no_grad():
                self._expected[which] = outputs(self.block(*getattr(self, which)))
        return self._expected[which]

    def exported(self):
        """torch.export of the block with one dynamic dimension for the batch axis of every batched input."""
        if self._exported is None:
            batch = torch.export.Dim("batch", min=1, max=1024)
            dyn = tuple({0: batch} if b else None for b in self.batched)
            try:
                self._exported = torch.export.export(self.block, tuple(self.inputs), dynamic_shapes=dyn)
            except Exception as e:  # remembered: the ONNX check reports the same failure without retrying
                self._exported = e
        if isinstance(self._exported, Exception):
            raise self._exported
        return self._exported


def outputs(o):
    return tuple(o) if isinstance(o, (tuple, list)) else (o,)


def assert_same(got, want, tol=EXACT):
    got = outputs(got)
    assert len(got) == len(want), f"{len(got)} outputs, expected {len(want)}"
    for g, w in zip(got, want):
        torch.testing.assert_close(torch.as_tensor(g), w, **tol)


def _run(module, xs):
    with torch.no_grad():
        return module(*xs)


def check_pickle(case):
    model = pickle.loads(pickle.dumps(case.host()))
    assert_same(_run(model, case.inputs), case.expected())


def check_torch_save(case):
    buf = io.BytesIO()
    torch.save(case.host(), buf)
    buf.seek(0)
    model = torch.load(buf, weights_only=False)
    assert_same(_run(model, case.inputs), case.expected())


def check_deepcopy(case):
    clone = copy.deepcopy(case.block)
    assert_same(_run(clone, case.inputs), case.expected())
    originals = dict(case.block.state_dict(keep_vars=True))
    for key, t in clone.state_dict(keep_vars=True).items():
        assert t.data_ptr() != originals[key].data_ptr(), f"{key} shared with the original"
    params = list(clone.parameters())
    if params:  # changing the copy leaves the original alone
        before = [p.detach().clone() for p in case.block.parameters()]
        with torch.no_grad():
            params[0].add_(1.0)
        assert all(torch.equal(a, b) for a, b in zip(before, case.block.parameters()))


def check_fx_trace(case):
    traced = torch.fx.symbolic_trace(case.host())
    assert_same(_run(traced, case.inputs), case.expected())
    assert_same(_run(traced, case.other_inputs), case.expected("other_inputs"))


def check_feature_extractor(case):
    from torchvision.models.feature_extraction import NodePathTracer, create_feature_extractor

    host = case.host()
    tracer = NodePathTracer()
    graph = tracer.trace(host)
    out = next(n for n in graph.nodes if n.op == "output").args[0]
    names = [tracer.node_to_qualname[n] for n in outputs(out)]  # the block's output nodes
    extractor = create_feature_extractor(host, return_nodes={q: f"out{i}" for i, q in enumerate(names)})
    got = _run(extractor, case.inputs)
    assert_same([got[f"out{i}"] for i in range(len(names))], case.expected())


def check_jit_trace(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(case.block, tuple(case.inputs), check_trace=False)
    assert_same(_run(traced, case.inputs), case.expected())
    assert_same(_run(traced, case.other_inputs), case.expected("other_inputs"))


def check_export(case):
    module = case.exported().module()
    assert_same(_run(module, case.other_inputs), case.expected("other_inputs"))
    assert_same(_run(module, case.inputs), case.expected())


def _onnxruntime(model_bytes, case):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    for which in ("inputs", "other_inputs"):
        feed = dict(zip(names, (x.numpy() for x in getattr(case, which))))
        got = [torch.from_numpy(o) for o in sess.run(None, feed)]
        assert_same(got, case.expected(which), ONNX_TOL)


def check_onnx_ts(case):
    buf = io.BytesIO()
    outs = [f"out{i}" for i in range(len(case.expected()))]
    axes = {n: {0: "batch"} for n, b in zip(case.input_names, case.batched) if b}
    axes.update({o: {0: "batch"} for o in outs})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            case.block,
            tuple(case.inputs),
            buf,
            dynamo=False,
            opset_version=17,
            input_names=case.input_names,
            output_names=outs,
            dynamic_axes=axes,
        )
    _onnxruntime(buf.getvalue(), case)


def check_onnx_dynamo(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(case.exported(), dynamo=True, verbose=False)
    _onnxruntime(program.model_proto.SerializeToString(), case)


CHECKS = {
    "pickle": check_pickle,
    "torch_save": check_torch_save,
    "deepcopy": check_deepcopy,
    "fx_trace": check_fx_trace,
    "feature_extractor": check_feature_extractor,
    "jit_trace": check_jit_trace,
    "export": check_export,
    "onnx_ts": check_onnx_ts,
    "onnx_dynamo": check_onnx_dynamo,
}
KINDS = ("built", "generated")


def main(names):
    import logging

    logging.disable(logging.WARNING)
    names = names or sorted(attndsl.all_specs())
    passed = {(k, c): 0 for k in KINDS for c in CHECKS}
    start = time.time()
    for name in names:
        for kind in KINDS:
            case = Case(name, kind)
            for check, fn in CHECKS.items():
                t0 = time.time()
                try:
                    fn(case)
                    passed[kind, check] += 1
                except Exception as e:
                    msg = str(e).strip().splitlines()[0][:150] if str(e).strip() else ""
                    print(f"FAIL {name} {kind} {check}: {type(e).__name__}: {msg}", flush=True)
                if time.time() - t0 > 5:
                    print(f"slow {name} {kind} {check}: {time.time() - t0:.1f}s", flush=True)
    print(f"{len(names)} specs in {time.time() - start:.0f}s")
    print("check".ljust(20) + "".join(k.rjust(12) for k in KINDS))
    for check in CHECKS:
        print(check.ljust(20) + "".join(f"{passed[k, check]}/{len(names)}".rjust(12) for k in KINDS))


if __name__ == "__main__":
    main(sys.argv[1:])
