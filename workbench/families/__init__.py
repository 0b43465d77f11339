"""Ported families: one folder each (reference, pipeline, config, presets)."""
