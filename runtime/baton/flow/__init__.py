"""The flow engine: which units run next (engine), decided from the job spec and the
recorded unit states (state), as actions for an executor (actions); partition planning
reaches the repository through a port (partitions). Pure: no I/O of its own."""
