"""Stage 3, measuring a model's answers: ``contrast`` (the log-likelihood contrast and register shift),
``judge`` (alignment and coherence scores), ``evaluate`` (sample, judge, summarise) and ``steering``
(steered generation and scoring along a residual direction).
"""
