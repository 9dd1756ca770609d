"""The BatchJob manifest: its pydantic models (model), what values it may hold
(values), how manifests are read (manifests), the snapshot an execution carries
(snapshot), and the ``module:attr`` references it names (refs)."""
