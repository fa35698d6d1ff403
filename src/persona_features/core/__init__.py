"""Stage 0, what every stage uses: ``params`` (profiles, every knob checked), ``paths``, ``stats`` (intervals and
tests), ``locks`` (a run's stage, an artifact's build), ``environment`` (versions, hardware) and ``artifacts``
(the cache). Imports nothing else of the package.
"""
