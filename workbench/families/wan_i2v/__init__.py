"""Wan 2.1 image-to-video: a first frame (CLIP embeddings + VAE latent condition) and a prompt."""
