"""Tests of reference.lipschitz."""
