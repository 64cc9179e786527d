"""transformers/core_model_loading.py: checkpoint tensors are materialized on their target device
by a thread pool (unless HF_DEACTIVATE_ASYNC_LOAD is set), then set on their modules."""

import os
from concurrent.futures import Future, ThreadPoolExecutor

from torch import nn

GLOBAL_WORKERS = min(4, os.cpu_count() or 4)


def _materialize_copy(tensor, device=None, dtype=None):
    tensor = tensor  # slicing the safetensors slice reads it; nothing to read here
    if dtype is not None or device is not None:
        tensor = tensor.to(device=device, dtype=dtype)
    return tensor


def spawn_materialize(thread_pool, tensor, device=None, dtype=None, sharding_op=None, tensor_idx=None):
    def _job():
        return _materialize_copy(tensor, device, dtype)

    if thread_pool is not None:
        return thread_pool.submit(_job)
    return _job


def set_param_for_module(model, target_name, param_value, *args):
    module_name, _, param_name = target_name.rpartition(".")
    module = model.get_submodule(module_name)
    setattr(module, param_name, nn.Parameter(param_value))


def convert_and_load_state_dict_in_model(model, state_dict, load_config, tp_plan=None, dtype_plan=None, disk_offload_index=None):
    device_map = load_config.device_map or {"": "cpu"}
    if os.environ.get("HF_DEACTIVATE_ASYNC_LOAD") == "1":
        thread_pool = None
    else:
        thread_pool = ThreadPoolExecutor(max_workers=GLOBAL_WORKERS)
    pending = {key: spawn_materialize(thread_pool, tensor, device=device_map.get("", "cpu")) for key, tensor in state_dict.items()}
    for key, job in pending.items():
        value = job.result() if isinstance(job, Future) else job()
        set_param_for_module(model, key, value)
    if thread_pool is not None:
        thread_pool.shutdown(wait=True)
    return {"missing_keys": [], "unexpected_keys": []}
