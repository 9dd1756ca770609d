"""Executors apply the flow engine's actions: here the local one (``baton run``); the
cluster's is the operator (baton_operator)."""
