"""Reporting: the HTML report and summaries for QA leads."""
