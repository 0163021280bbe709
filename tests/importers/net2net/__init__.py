"""Tests of net2fair.importers.net2net: one file per module, the end-to-end import in
test_core.py."""
