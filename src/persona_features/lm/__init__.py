"""Stage 2, the language model: ``models`` (loading, the nnsight wrapper), ``generation`` (batched sampling),
``finetune`` (LoRA or full fine-tunes on chat data), ``activations`` (reading the residual stream, sharded) and
``tiny_models`` (tiny random chat models of other families, for tests).
"""
