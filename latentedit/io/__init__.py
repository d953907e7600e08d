"""Stores and files: HDF5 image/latent stores, checkpoints, atomic writes, provenance hashes."""
