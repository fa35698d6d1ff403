"""Chapter 2, measuring misalignment: ``contrast_checks`` (does the contrast see the villain prompt, and is it
blind to tone?). The judge itself lives in ``measure.judge``.
"""
