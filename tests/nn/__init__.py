"""Tests of reference.nn."""
