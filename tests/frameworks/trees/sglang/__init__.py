"""Stand-in for SGLang's runtime (sglang.srt) with its real module paths and function names,
reduced to the functions on the GPU-memory allocation paths and calling each other as SGLang
does. Written from SGLang's source structure; no SGLang code is copied."""
