"""The toy pipeline's components: sizes, schedulers, and how they are built from a seed.

32x32 RGB images -> ``AutoencoderKL`` with three blocks (f=4) -> 8x8x4 latents; a small
``UNet2DConditionModel`` cross-attending to a small ``CLIPTextModel`` over the word-level toy
tokenizer. Schedulers follow Stable Diffusion: DDPM training betas (scaled_linear
0.00085-0.012, 1000 steps), and a DDIM sampler with ``clip_sample=False``,
``set_alpha_to_one=False``, ``steps_offset=1`` and leading spacing (DDIM's own defaults
differ). ``tiny=True`` gives minute versions for tests and smoke runs.
"""

from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from golden_noise.toy.tokenizer import MAX_LENGTH, SPECIAL, WORDS

LATENT_CHANNELS = 4
TEXT_DIM = 64
SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "timestep_spacing": "leading",
}


def build_vae(tiny: bool = False) -> AutoencoderKL:
    """f=4 KL autoencoder (three blocks, two downsamplings)."""
    channels = (8, 8, 8) if tiny else (32, 64, 64)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=channels,
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=8 if tiny else 32,
        sample_size=32,
    )


def build_unet(tiny: bool = False) -> UNet2DConditionModel:
    """Denoiser over 8x8x4 latents, cross-attending to the toy text encoder."""
    channels = (8, 16) if tiny else (32, 64, 128)
    n = len(channels)
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        down_block_types=("CrossAttnDownBlock2D",) * (n - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n - 1),
        block_out_channels=channels,
        layers_per_block=1 if tiny else 2,
        cross_attention_dim=TEXT_DIM // 8 if tiny else TEXT_DIM,
        attention_head_dim=8,
        norm_num_groups=8 if tiny else 16,
    )


def build_text_encoder(tiny: bool = False) -> CLIPTextModel:
    """A two-layer CLIP text transformer over the toy vocabulary."""
    dim = TEXT_DIM // 8 if tiny else TEXT_DIM
    config = CLIPTextConfig(
        vocab_size=len(SPECIAL) + len(WORDS),
        hidden_size=dim,
        intermediate_size=2 * dim,
        num_hidden_layers=1 if tiny else 2,
        num_attention_heads=2 if tiny else 4,
        max_position_embeddings=MAX_LENGTH,
        projection_dim=dim,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    return CLIPTextModel(config)


def build_noise_scheduler() -> DDPMScheduler:
    """The training noise schedule (Stable Diffusion's betas)."""
    return DDPMScheduler(**{k: v for k, v in SCHEDULER_CONFIG.items() if k != "set_alpha_to_one"})


def build_sampler() -> DDIMScheduler:
    """The default sampler: DDIM with Stable Diffusion's settings."""
    return DDIMScheduler(**SCHEDULER_CONFIG)
