from transformers.generation.utils import GenerationMixin
