"""The vocabulary of Baton: statuses, parameters, restart rules, records and errors.

Pure and stdlib-only, so every other layer (and the lean step process) can import it."""
