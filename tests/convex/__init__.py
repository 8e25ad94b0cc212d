"""Tests of reference.convex."""
