"""Stable Audio Open text-to-audio (T5 encoder, seconds conditioning, Stable Audio DiT, Oobleck VAE)."""
