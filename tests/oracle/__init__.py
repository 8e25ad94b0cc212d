"""Tests of reference.oracle."""
