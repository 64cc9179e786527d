"""A transformers-shaped program on the stand-in transformers tree (trees/transformers) over
torchlike: a model loaded with device_map="cuda" (the caching-allocator warmup, then checkpoint
tensors materialized on a thread pool), a second one loaded on the host then moved with .to(),
the user's code uploading its inputs, then generate() with the default dynamic cache, with the
static cache, and on the second model. Prints the EXPECT lines (see README.md) and exits 0."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "trees"))

import torch  # noqa: E402  (the stand-in, from trees/)
from torchlike.testing import expect, report  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

BATCH, PROMPT, NEW_TOKENS, HIDDEN = 2, 4096, 6, 1024


def checkpoint(config):
    """The safetensors state dict of a model with this config (host tensors)."""
    with torch.device("meta"):
        shapes = LlamaForCausalLM(config)
    return {name: torch.HostTensor(p.nbytes) for name, p in shapes.named_parameters()}


def main():
    config, draft_config = LlamaConfig(), LlamaConfig(num_hidden_layers=2)
    with expect("weights"):
        model = LlamaForCausalLM.from_pretrained("meta-llama/Llama-3.2-1B", config=config, state_dict=checkpoint(config), device_map="cuda")
        draft = LlamaForCausalLM.from_pretrained("draft", config=draft_config, state_dict=checkpoint(draft_config))
        draft.to("cuda")
    with expect("framework_cache"):  # the user's own uploads: no framework frame decides them
        input_ids = torch.HostTensor(BATCH * PROMPT * 8).to("cuda")
        inputs_embeds = torch.HostTensor(BATCH * PROMPT * HIDDEN * 2).to("cuda")
    # The user empties the allocator's cache between generations, so each one's cache reaches
    # the driver.
    with expect("compute"):
        model.generate((input_ids, BATCH, PROMPT), max_new_tokens=NEW_TOKENS)
        torch.cuda.empty_cache()
        model.generate((input_ids, BATCH, PROMPT), max_new_tokens=NEW_TOKENS, cache_implementation="static")
        torch.cuda.empty_cache()
        draft.generate((input_ids, BATCH, PROMPT), max_new_tokens=NEW_TOKENS)
    del inputs_embeds
    return 0 if report() else 1


if __name__ == "__main__":
    sys.exit(main())
