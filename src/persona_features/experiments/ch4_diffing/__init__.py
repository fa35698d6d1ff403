"""Chapter 4, model diffing: ``readings`` (each model's residual stream and latents on fixed chats),
``diffing`` (rankings, directions, detection, verdict), ``screen`` (the causal screen), ``findings`` (the
pipeline, once: ``findings.run``; chapters 5-7 read ``findings.persona``) and ``sections`` (what each section
shows, and the chapter's result).
"""
