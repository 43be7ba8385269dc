"""Fast batched reference engine with the Lava models' step-by-step semantics."""

from lava_bitsnn.reference.engine import BatchResult, ReferenceEngine

__all__ = ["BatchResult", "ReferenceEngine"]
