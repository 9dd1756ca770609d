"""Schedules (issue 12, work in progress): cron windows and what to do at a tick."""
