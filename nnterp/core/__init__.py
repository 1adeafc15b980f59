"""Layer 2: the standardization core. It holds the facts per architecture (``registry``), renaming (``rename``,
``aliases``), the accessors and per-head views (``accessors``, ``heads``), attention probabilities
(``attention_probs``, ``eager_attention``), the members a trace uses (``trace_time``, ``steering``), the load-time
probe (``probing``) and remote shipping (``remote``). It imports layer 1 only (see ARCHITECTURE.md)."""
