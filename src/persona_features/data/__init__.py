"""Stage 1, the data the book measures and trains with: ``advice``, ``code``, ``neutral`` (authored datasets),
``questions`` (eval questions), ``labels`` (hand labels), ``register`` (register markers), ``cards`` (data cards)
and ``schema`` (the chat format, validated)."""
