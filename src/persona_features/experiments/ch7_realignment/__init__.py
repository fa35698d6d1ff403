"""Chapter 7, emergent re-alignment: ``realignment`` (fine-tunes on good data from a misaligned start).
"""
