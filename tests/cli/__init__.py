"""Tests of reference.cli."""
