"""Projection of real images into the generator's input space (encoder refinement, latent store)."""
