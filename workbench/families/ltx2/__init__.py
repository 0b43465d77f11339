"""LTX-2 joint audio-video generation (text -> video with its soundtrack)."""
