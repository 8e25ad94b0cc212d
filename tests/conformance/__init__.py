"""Tests of reference.conformance."""
