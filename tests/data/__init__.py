"""Tests of reference.data."""
