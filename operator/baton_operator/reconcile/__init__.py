"""The reconciler: pure decisions from what is (the BatchJob, the BatchExecution, the job
repository's state, the Jobs in the cluster) to what to do (actions). No I/O here: the
loop reads the state, :func:`baton_operator.reconcile.decide.reconcile` decides, and the
applier executes. The repository is the source of truth for progress; ``.status``
mirrors it."""
