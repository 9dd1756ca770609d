"""Kubernetes: the custom resources, their CRDs, and the API I/O."""
