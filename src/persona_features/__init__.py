"""Replication of "Persona Features Control Emergent Misalignment" (Wang et al., 2025).

Packages by pipeline stage; each imports only the stages above it in this list:

- ``core``: ``params``, ``paths``, ``stats``, ``locks``, ``environment``, ``artifacts`` (the cache),
  ``chapter_result`` (what a chapter returns: ``Verdict``, ``ChapterResult``);
- ``data``: ``advice``, ``code``, ``neutral``, ``questions``, ``labels``, ``register``, ``cards``, ``schema``;
- ``lm``: ``models``, ``generation``, ``finetune``, ``activations``, ``tiny_models``;
- ``measure``: ``contrast``, ``judge``, ``api_judge``, ``evaluate``, ``steering``;
- ``sae`` (``sae_corpus``, ``sae``) and ``organisms`` (``design``, ``measurement``, ``persona``,
  ``persona_arms``, ``setting_sweep``, ``strength``), which do not import each other;
- ``experiments``: one package per chapter, ``ch1_model`` (``microscope``), ``ch2_measuring``
  (``contrast_checks``, ``measuring``), ``ch3_emergence`` (``emergence``, ``em_verdict``, ``sections``),
  ``ch4_diffing`` (``readings``, ``diffing``, ``screen``, ``findings``, ``sections``), ``ch5_steering``
  (``interventions``, ``ablation``), ``ch6_early_warning`` (``tracking``, ``early_warning``), ``ch7_realignment``
  (``realignment``);
- ``book``: ``chapter``, ``plots``, ``report``, ``results``, ``scorecard``, ``appendix``, ``sweep``, ``runner``.

``make lint`` checks the order with import-linter (``[tool.importlinter]`` in ``pyproject.toml``).
"""

__version__ = "0.1.0"
