"""Stand-in for vLLM (V1 engine) with its real module paths and function names, reduced to the
functions on the GPU-memory allocation paths and calling each other as vLLM does. Written from
vLLM's source structure; no vLLM code is copied."""
