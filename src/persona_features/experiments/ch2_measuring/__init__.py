"""Chapter 2, measuring misalignment: ``contrast_checks`` (does the contrast see the villain prompt, and is it
blind to tone?) and ``measuring`` (the facts the chapter shows, and its result: the judge's verdict). The judge
itself lives in ``measure.judge``.
"""
