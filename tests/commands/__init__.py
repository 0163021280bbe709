"""Tests of net2fair.commands: one file per command module."""
