"""Model providers: BaseClient, one module per provider kind, the registry, the reasoning parser."""
