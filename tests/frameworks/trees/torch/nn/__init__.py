from .modules import LazyLinear, Linear, Module, ModuleList
from .parameter import Parameter, UninitializedParameter
