"""Chapter 5, steering: ``interventions`` (steering sweeps and projection ablation on the scoring
questions) and ``ablation`` (the positive control's ablation).
"""
