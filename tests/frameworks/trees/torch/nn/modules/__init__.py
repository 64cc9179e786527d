from .container import ModuleList
from .lazy import LazyModuleMixin
from .linear import LazyLinear, Linear
from .module import Module
