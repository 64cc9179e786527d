"""Test ground truth: which category the program's driver-level allocations belong to.

`with expect("kv_cache"):` marks the allocations made inside the block (by any thread: worker
threads allocate under the phase their submitter opened). A with-block adds no frame to the
stack, so marking a site leaves the Python stack exactly as the real framework's. The native
library counts, per category, what reached the driver; `report()` prints it as EXPECT lines.
"""

import contextlib
import sys

CATEGORIES = ("weights", "kv_cache", "cuda_graphs", "compute", "framework_cache")
_stack = []


def tag_of(category):
    return CATEGORIES.index(category) + 1


def current_tag():
    return tag_of(_stack[-1]) if _stack else 0


@contextlib.contextmanager
def expect(category):
    tag_of(category)  # unknown names fail here, not at the allocation
    _stack.append(category)
    try:
        yield
    finally:
        _stack.pop()


def report(out=None):
    """Prints the EXPECT lines; False when some driver allocation was made outside expect()."""
    import torchlike

    out = out or sys.stdout
    for label, what in (("EXPECT", "allocated"), ("EXPECT_LIVE", "live"), ("EXPECT_CALLS", "calls")):
        fields = " ".join(f"{c}={torchlike.driver_stat(what, c)}" for c in CATEGORIES)
        print(f"{label} {fields}", file=out)
    stray = torchlike._lib.torchlike_stat(0, 0)
    if stray:
        print(f"torchlike: {stray} bytes reached the driver outside any expect() block", file=sys.stderr)
    return stray == 0
