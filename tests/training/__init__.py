"""Tests of reference.training."""
