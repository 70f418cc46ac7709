"""alti: Aggregation of Layer-wise Token-to-token Interactions for Transformer classifiers."""

__version__ = "0.1.0"
