"""BatchSchedules in the cluster: the pure tick (:mod:`.decide`) and its controller."""
