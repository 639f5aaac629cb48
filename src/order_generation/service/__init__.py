"""Use cases: orchestrate the domain and the adapters."""
