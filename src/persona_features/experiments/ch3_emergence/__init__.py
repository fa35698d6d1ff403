"""Chapter 3, emergent misalignment: ``emergence`` (every wrong-advice model against its controls, the
verdicts, tables and sentences) and ``em_verdict`` (the verdict with the fine-tune as the unit).
"""
