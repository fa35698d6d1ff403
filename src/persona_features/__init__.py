"""Replication of "Persona Features Control Emergent Misalignment" (Wang et al., 2025).

One module per pipeline stage: ``params`` (profiles), ``artifacts`` (the cache),
``models`` (loading and the nnsight wrapper), ``data`` (prompts), ``generation``
(batched sampling), ``activations`` (nnsight tracing), ``stats``, ``plots``,
``results`` (chapter outputs), ``scorecard`` and ``runner`` (papermill + Jupyter Book).
"""

__version__ = "0.1.0"
