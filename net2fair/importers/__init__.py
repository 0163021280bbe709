"""Importers: turn models trained by other code into ordinary net2fair model folders."""
