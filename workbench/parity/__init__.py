"""Parity toolkit: capture every checkpoint on both sides, compare, find the first divergence."""
