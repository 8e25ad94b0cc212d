"""Tests of reference.testing."""
