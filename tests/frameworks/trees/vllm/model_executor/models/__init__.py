"""vllm/model_executor/models: the model registry."""


def get_model_cls(model_config):
    from .llama import LlamaForCausalLM

    return LlamaForCausalLM
