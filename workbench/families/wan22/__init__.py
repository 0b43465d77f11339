"""Wan 2.2 text-to-video with two experts (high-noise `transformer`, low-noise `transformer_2`)."""
