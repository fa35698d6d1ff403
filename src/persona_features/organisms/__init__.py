"""Stage 4b, the fine-tuned models every chapter studies: ``design`` (the arms: wrong-advice sets, their
controls, their settings), ``measurement`` (measuring a model, cached, and the per-question tests),
``persona`` and ``persona_arms`` (the persona organisms, including the positive control), and how the
settings were chosen: ``setting_sweep`` and ``strength`` (chapter 3's sweep and strength curve).
"""
