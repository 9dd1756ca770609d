"""Job definitions by name: manifests and ``@baton.job``-decorated Python (jobs), the
decorator API (decorators), and the pre-launch check of a job's components (checks)."""
