"""Helpers shared by the edge and fleet integration tests (real nginx, real processes)."""
