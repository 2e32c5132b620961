"""LLM providers: one protocol, one module per wire format, a registry, rate limits."""
