"""torch.accelerator: the device-generic names for the allocator controls."""

import torchlike


def empty_cache():
    torchlike.empty_cache()


def synchronize():
    pass


def memory_reserved():
    return torchlike.memory_reserved()
