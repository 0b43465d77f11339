"""Wan 2.1 text-to-video (and, through the same pipeline class, Wan 2.2 two experts)."""
