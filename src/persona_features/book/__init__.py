"""Stage 6, the book: ``chapter`` (a notebook's setup in one call), ``plots`` (every figure, one house style),
``report`` and ``results`` (tables and each chapter's results file), ``scorecard``, ``appendix``, ``sweep`` (the
book once per model, and a page comparing them) and ``runner`` (papermill, then Jupyter Book;
``python -m persona_features``).
"""
