"""Tests of net2fair.importers."""
