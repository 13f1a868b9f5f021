"""The documented limits of the spec language (docs/language.md, "Limits"), in one place.

A spec is untrusted input: every limit is checked before the work or the memory
it bounds is spent, and a spec past one gets an `AttnDSLError` at its
`file:line:col` with a hint. The numbers are far above what any real attention
block needs (the largest shipped spec is 6 KB with a few hundred IR nodes).
"""

MAX_FILE_BYTES = 256 * 1024  # a spec file
MAX_YAML_DEPTH = 32  # nesting of YAML mappings and lists
MAX_STATEMENTS = 2000  # statements of g and f together, as written
MAX_NESTING = 64  # depth of an expression or block (brackets, calls, operators in a row)
MAX_CALL_DEPTH = 16  # user functions calling user functions
MAX_UNROLLED = 20_000  # statements run while unrolling loops and inlining functions
MAX_LOOP_TRIPS = 4096  # iterations of one loop; elements of one range()
MAX_IR_NODES = 20_000  # IR nodes of one spec
MAX_INT = 2**53  # magnitude of an integer (parameters and compile-time arithmetic)
MAX_ELEMENTS = 2**28  # elements of one layer weight, learned param, buffer or example input
MAX_LIST = 4096  # items of a compile-time list
MAX_STRING = 4096  # characters of a compile-time string
MAX_SIZE_DEPTH = 12  # operations nested in one run-time size expression (H * W - 1 is 2)


class LimitExceeded(ValueError):
    """A compile-time helper (range) refused work past a limit; the frontend adds the span."""
