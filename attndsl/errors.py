"""The one exception family of attndsl.

Every error a user can cause carries, where known, the spec file, line and
column and the offending source text, and renders as

    specs/senet.yaml:14:9: error: unknown op `sigmoidd`
       14 |   a = sigmoidd(z)
          |       ^^^^^^^^
    hint: did you mean `sigmoid`?
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A place in a spec file: 1-based line and column, and the text there."""

    file: str
    line: int
    col: int
    length: int = 1
    source_line: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class AttnDSLError(Exception):
    """Base of every error attndsl raises on purpose."""

    stage = "error"

    def __init__(self, message: str, span: Span | None = None, hint: str | None = None):
        super().__init__(message)
        self.message, self.span, self.hint = message, span, hint

    def render(self) -> str:
        head = f"{self.span}: error: {self.message}" if self.span else f"error: {self.message}"
        lines = [head]
        if self.span and self.span.source_line:
            num = str(self.span.line)
            lines.append(f" {num} | {self.span.source_line}")
            pad = " " * (self.span.col - 1)
            lines.append(f" {' ' * len(num)} | {pad}{'^' * max(1, self.span.length)}")
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(_printable(ln) for ln in lines)

    def __str__(self) -> str:
        return self.render()


def _printable(text: str) -> str:
    """Spec text in an error goes to a terminal: control characters (escape sequences) are shown as escapes."""
    return "".join(c if c.isprintable() or c == "\t" else ascii(c)[1:-1] for c in text)


class SpecError(AttnDSLError):
    """The YAML document: structure, keys, parameter declarations."""


class ParseError(AttnDSLError):
    """The expression language: syntax."""


class NameError_(AttnDSLError):
    """A name or op that does not exist."""


class ParamError(AttnDSLError):
    """A parameter value: missing, wrong type, out of range."""


class ShapeError(AttnDSLError):
    """Shape inference: a mismatch between what an op needs and what it gets."""


class IRError(AttnDSLError):
    """The IR broke an invariant (a compiler bug, found by the verifier)."""


class LoweringError(AttnDSLError):
    """Lowering to torch.fx or generating code."""


def did_you_mean(name: str, candidates) -> str | None:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None
