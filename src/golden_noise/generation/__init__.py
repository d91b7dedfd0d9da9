"""Stage III: golden latents for a pipeline call (`generation.generate.GoldenNoise`), and the
one batched path that renders samples under several noises (`generation.arms`)."""
