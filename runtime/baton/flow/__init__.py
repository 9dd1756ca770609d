"""The flow engine: which units run next, decided from the job spec and the recorded
unit states (pure; partition planning reaches the repository through a port)."""
