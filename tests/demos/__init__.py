"""Tests of the demo projects."""
