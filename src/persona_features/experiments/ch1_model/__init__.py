"""Chapter 1, the model under the microscope: ``microscope`` (the residual stream's norms by layer, and the
chapter's result)."""
