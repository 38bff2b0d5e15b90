"""Helpers of the browser test (test_ui_browser.py): `dagster dev` as a subprocess."""
