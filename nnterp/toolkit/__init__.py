"""Layer 6: the research toolkit. It holds activations, prompts, interventions (the logit lens, patchscope,
steering), display and the analyses in ``toolkit.analysis``. It uses the model classes through their public API
(see ARCHITECTURE.md)."""
