"""vllm/tracing: @instrument adds an OpenTelemetry span when OTel is installed; without it the
function is returned unchanged (as here)."""

import functools


def instrument(obj=None, *, span_name="", attributes=None, record_exception=True):
    if obj is None:
        return functools.partial(instrument, span_name=span_name, attributes=attributes, record_exception=record_exception)
    return obj
