"""Renderers of results.json: the HTML matrix, Markdown summary, JUnit XML and run diffs."""
