"""Tasks: definitions, bunches, launches (outbox), manifests, task pages and cloning."""
