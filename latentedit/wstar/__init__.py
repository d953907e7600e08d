"""W*: a learned proxy latent space (Real NVP bijection T: latent → W*) in which attributes are linearly separable
and distances follow perceptual distances ("Semantic and geometric unfolding of StyleGAN latent space")."""
