"""Replication of "Persona Features Control Emergent Misalignment" (Wang et al., 2025).

One module per pipeline stage: ``params`` (profiles), ``chapter`` (a notebook's setup in one call),
``artifacts`` (the cache), ``models`` (loading and the nnsight wrapper), ``data`` (authored datasets,
questions, labels, register markers), ``generation`` (batched sampling), ``finetune``, ``judge``,
``contrast``, ``evaluate``, ``emergence`` (chapter 3's experiment), ``activations`` (nnsight tracing,
sharded), ``sae_corpus`` and ``sae`` (chapter 4's SAE), ``stats``, ``plots``, ``report``, ``results``, ``scorecard``,
``appendix`` and ``runner`` (papermill + Jupyter Book).
"""

__version__ = "0.1.0"
