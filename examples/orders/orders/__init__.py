"""The import-orders example job: code referenced from job.yaml as orders.*."""
