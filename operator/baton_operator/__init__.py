"""The Baton operator: BatchJob and BatchExecution reconciled into batch/v1 Jobs."""
