"""Chapter 3, emergent misalignment: ``emergence`` (every wrong-advice model against its controls, the verdicts,
tables and sentences), ``em_verdict`` (the verdict with the fine-tune as the unit) and ``sections`` (what each
section shows, and the chapter's result).
"""
