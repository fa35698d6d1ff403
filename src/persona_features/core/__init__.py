"""Stage 0, what every stage uses: ``params`` (profiles, every knob checked), ``paths``, ``stats`` (intervals and
tests), ``locks`` (a run's stage, an artifact's build), ``environment`` (versions, hardware), ``artifacts`` (the
cache) and ``chapter_result`` (what a chapter returns: its verdicts, metrics and glued facts). Imports nothing
else of the package.
"""
