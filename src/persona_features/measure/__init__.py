"""Stage 3, measuring a model's answers: ``contrast`` (the log-likelihood contrast and register shift),
``judge`` (alignment and coherence scores: the embedded judge), ``api_judge`` (the EM papers' judge behind an
OpenAI-compatible endpoint, optional), ``evaluate`` (sample, judge, summarise) and ``steering``
(steered generation and scoring along a residual direction).
"""
