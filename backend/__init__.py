"""LLM Portal back end: configuration, database, models, security, services, providers and the REST API."""
