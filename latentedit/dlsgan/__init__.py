"""DLSGAN (Kang et al., "Dynamic Latent Scale for GAN Inversion", ICLR 2022): a GAN whose discriminator also
encodes, trained so that its encoder inverts the generator."""
