"""Stage 5, one package per chapter: ``ch1_model``, ``ch2_measuring``, ``ch3_emergence``, ``ch4_diffing``,
``ch5_steering``, ``ch6_early_warning``, ``ch7_realignment``. A chapter imports the stages below and earlier
chapters' packages, never a later chapter's.
"""
