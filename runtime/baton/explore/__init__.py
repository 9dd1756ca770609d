"""Read-only questions about the job repository (Spring Batch's JobExplorer)."""
