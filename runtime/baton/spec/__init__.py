"""The BatchJob manifest: its pydantic model and how manifests are loaded."""
