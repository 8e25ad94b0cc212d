"""Tests of reference.io."""
