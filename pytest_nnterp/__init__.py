"""pytest_nnterp: the nnterp compatibility suite as a pytest plugin (the plugin itself lands in a later issue)."""
