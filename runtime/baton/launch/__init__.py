"""Starting and controlling executions (Spring Batch's JobOperator): launch, start,
start-next, restart, stop, abandon, recover."""
