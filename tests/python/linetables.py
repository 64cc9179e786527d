"""Prints every code object of a few standard modules (and of itself) as one JSON line each:
the interpreter's `sys.hexversion`, `co_firstlineno`, `co_linetable` in hex, the bytecode length
and `co_lines()` (start, end, line). The line-table decoder's tests compare against it."""
import asyncio
import dataclasses
import json
import sys
import traceback
import typing


def codes(co):
    yield co
    for c in co.co_consts:
        if hasattr(c, "co_code"):
            yield from codes(c)


def tricky(x):
    # Lines that need the long forms: big jumps, lines without code, multi-line expressions.
    y = [
        i
        for i in range(x)
        if i % 2
    ]
    try:
        return {k: v for k, v in zip(y, y)}[0]
    except (KeyError,
            IndexError):
        pass
    finally:
        y = None







    return lambda: (x,
                    y)


def main():
    roots = [compile(open(m.__file__).read(), m.__file__, "exec") for m in (asyncio.base_events, dataclasses, traceback, typing, sys.modules[__name__])]
    for root in roots:
        for co in codes(root):
            print(json.dumps({
                "v": sys.hexversion,
                "first": co.co_firstlineno,
                "table": co.co_linetable.hex(),
                "n": len(co.co_code),
                "lines": list(co.co_lines()),
                "name": co.co_name,
            }))


main()
