"""The step process: one unit of an execution (a step, a partition, a compensation or
a callback), as every pod and every local unit runs it (``python -m baton.step``).

entry (the argv contract: one builder, one parser) → runner (run and record the end)
→ unit (open the unit, build its context) → chunk (the chunk loop; its reading, fault
policy, writers and skip scan in their own modules) or a tasklet.
"""
