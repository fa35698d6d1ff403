"""Stage 2, the language model: ``models`` (loading, the nnsight wrapper), ``generation`` (batched sampling),
``finetune`` (LoRA or full fine-tunes on chat data) and ``activations`` (reading the residual stream, sharded).
"""
