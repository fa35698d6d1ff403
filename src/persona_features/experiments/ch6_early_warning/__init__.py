"""Chapter 6, early warning: ``tracking`` (one model's misalignment signals per unit; chapter 7 reads it
too) and ``early_warning`` (the mixes of bad data and the verdict).
"""
