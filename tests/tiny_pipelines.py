"""Tiny random-weight text-to-image pipelines of each supported family, built offline.

Tests import this module as `tiny_pipelines` (pytest's default "prepend" import mode puts
`tests/`, which has no `__init__.py`, on `sys.path`). Each builder seeds torch itself, so the
same call gives the same weights; tokenizers are built in memory, since tests run offline and
cannot download one. Configs follow the shape of diffusers' own `get_dummy_components`, with
the text widths as parameters so a pipeline can be made to look like a real family (e.g.
SDXL's 768 + 1280 = 2048) to NPNet without real-size denoisers. `tiny_npnet` and
`make_identity` give a fast NPNet that fits these pipelines.
"""

from __future__ import annotations

import string
from collections.abc import Callable

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    DiffusionPipeline,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    HunyuanDiT2DModel,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import (
    BertConfig,
    BertModel,
    BertTokenizer,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    T5Config,
    T5EncoderModel,
    T5Tokenizer,
)
from transformers.convert_slow_tokenizer import bytes_to_unicode

from golden_noise.adapters import adapter_for
from golden_noise.npnet import NPNet, NPNetConfig
from golden_noise.scorers.registry import get_scorer
from golden_noise.teachers import CollectionSampler, Rows, SamplerSettings

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def clip_tokenizer(pad_token: str = EOS) -> CLIPTokenizer:
    """Byte-level CLIP tokenizer (no merges): every text tokenizes, one token per byte."""
    chars = list(bytes_to_unicode().values())
    pieces = [BOS, EOS, *chars, *(c + "</w>" for c in chars)]
    vocab = {piece: i for i, piece in enumerate(dict.fromkeys(pieces))}
    return CLIPTokenizer(
        vocab=vocab,
        merges=[],
        bos_token=BOS,
        eos_token=EOS,
        pad_token=pad_token,
        model_max_length=77,
    )


def bert_tokenizer() -> BertTokenizer:
    """Character-level WordPiece tokenizer for Hunyuan-DiT's BERT text path."""
    chars = string.ascii_lowercase + string.digits + string.punctuation
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = [*specials, *chars, *(f"##{c}" for c in chars)]
    return BertTokenizer(vocab={p: i for i, p in enumerate(pieces)}, model_max_length=77)


def t5_tokenizer() -> T5Tokenizer:
    """Character-level unigram tokenizer for Hunyuan-DiT's mT5 text path."""
    chars = string.ascii_lowercase + string.digits + string.punctuation
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -1.0)]
    pieces += [(c, -2.0) for c in chars] + [(f"▁{c}", -1.5) for c in chars]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=256)


def clip_text_encoder(
    hidden: int, projection: int | None = None, vocab_size: int = 520
) -> CLIPTextModel:
    """A one-layer CLIP text encoder of the given width (with a projection head if asked)."""
    config = CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        hidden_size=hidden,
        intermediate_size=16,
        num_attention_heads=2,
        num_hidden_layers=2,
        vocab_size=vocab_size,
        max_position_embeddings=77,
        projection_dim=projection or hidden,
        hidden_act="gelu",
    )
    if projection is None:
        return CLIPTextModel(config).eval()
    return CLIPTextModelWithProjection(config).eval()


def tiny_vae(blocks: int = 2, latent_channels: int = 4, **extra: object) -> AutoencoderKL:
    """A VAE that downsamples 2**(blocks-1) times; 4 blocks gives the usual 8x.

    SD3 and FLUX give 16 latent channels and a `shift_factor` (their decoders need one).
    """
    return AutoencoderKL(
        block_out_channels=[8] * blocks,
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * blocks,
        up_block_types=["UpDecoderBlock2D"] * blocks,
        latent_channels=latent_channels,
        norm_num_groups=8,
        layers_per_block=1,
        **extra,
    ).eval()


def flow_vae() -> AutoencoderKL:
    """SD3/FLUX-shaped VAE: 16 latent channels, shift and scale, no quant convs."""
    return tiny_vae(
        latent_channels=16,
        shift_factor=0.0609,
        scaling_factor=1.5035,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )


def t5_encoder(tokenizer: T5Tokenizer, d_model: int = 32) -> T5EncoderModel:
    """A one-layer T5 encoder of width `d_model` (the width NPNet sees for T5 families)."""
    return T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=d_model,
            d_ff=16,
            d_kv=8,
            num_layers=1,
            num_heads=2,
            relative_attention_num_buckets=8,
        )
    ).eval()


def _unet(cross_attention_dim: int, sample_size: int, **extra: object) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=4,
        norm_num_groups=8,
        **extra,
    ).eval()


def build_sd(text_dim: int = 32, sample_size: int = 16) -> StableDiffusionPipeline:
    """SD 1.x-shaped: one CLIP text encoder, epsilon-prediction DDIM."""
    torch.manual_seed(0)
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return StableDiffusionPipeline(
        vae=tiny_vae(),
        text_encoder=clip_text_encoder(text_dim),
        tokenizer=clip_tokenizer(),
        unet=_unet(text_dim, sample_size),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def build_sd2(text_dim: int = 48, sample_size: int = 16) -> StableDiffusionPipeline:
    """SD 2.x-shaped: a wider text encoder and v-prediction (same pipeline class as SD 1.x)."""
    pipe = build_sd(text_dim, sample_size)
    config = pipe.scheduler.config
    pipe.scheduler = DDIMScheduler.from_config(config, prediction_type="v_prediction")
    return pipe


def build_sdxl(
    text_dims: tuple[int, int] = (16, 32), sample_size: int = 16, vae_blocks: int = 2
) -> StableDiffusionXLPipeline:
    """SDXL-shaped: two CLIP encoders (concatenated per token), Euler (init_noise_sigma != 1).

    `text_dims=(768, 1280)` with `sample_size=128, vae_blocks=4` gives the real SDXL prompt
    embedding (77x2048) and latent size (4x128x128 at 1024 px) on a tiny denoiser.
    """
    torch.manual_seed(0)
    time_dim = 8
    unet = _unet(
        sum(text_dims),
        sample_size,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=6 * time_dim + text_dims[1],
        use_linear_projection=True,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
    )
    return StableDiffusionXLPipeline(
        vae=tiny_vae(vae_blocks),
        text_encoder=clip_text_encoder(text_dims[0]),
        text_encoder_2=clip_text_encoder(text_dims[1], projection=text_dims[1]),
        tokenizer=clip_tokenizer(),
        tokenizer_2=clip_tokenizer(pad_token="!"),
        unet=unet,
        scheduler=scheduler,
        add_watermarker=False,
    )


def build_hunyuan_dit(text_dim: int = 32, sample_size: int = 8) -> DiffusionPipeline:
    """Hunyuan-DiT-shaped: BERT (the embedding NPNet sees) + mT5, a DiT, stochastic DDPM.

    Its rotary grid assumes an 8x VAE, hence 4 VAE blocks; call it with
    `use_resolution_binning=False` and a generator.
    """
    from diffusers import HunyuanDiTPipeline

    torch.manual_seed(0)
    t5_dim = 32
    transformer = HunyuanDiT2DModel(
        sample_size=sample_size,
        num_layers=2,
        patch_size=2,
        attention_head_dim=8,
        num_attention_heads=2,
        in_channels=4,
        cross_attention_dim=text_dim,
        cross_attention_dim_t5=t5_dim,
        pooled_projection_dim=16,
        hidden_size=16,
        text_len=77,
        text_len_t5=256,
        activation_fn="gelu-approximate",
    ).eval()
    tokenizer, tokenizer_2 = bert_tokenizer(), t5_tokenizer()
    bert = BertModel(
        BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=text_dim,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=16,
            max_position_embeddings=77,
        ),
        add_pooling_layer=False,
    ).eval()
    t5 = t5_encoder(tokenizer_2, t5_dim)
    return HunyuanDiTPipeline(
        vae=tiny_vae(4),
        text_encoder=bert,
        tokenizer=tokenizer,
        transformer=transformer,
        scheduler=DDPMScheduler(),
        text_encoder_2=t5,
        tokenizer_2=tokenizer_2,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def build_sd3(t5_dim: int = 32, sample_size: int = 8) -> DiffusionPipeline:
    """SD3-shaped: two CLIP encoders + T5 (333 tokens at the default max_sequence_length 256),
    a 16-channel MMDiT, flow matching with SD3's shift 3."""
    from diffusers import SD3Transformer2DModel, StableDiffusion3Pipeline

    torch.manual_seed(0)
    clip_dims = (8, 8)
    transformer = SD3Transformer2DModel(
        sample_size=sample_size,
        patch_size=1,
        in_channels=16,
        out_channels=16,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=2,
        caption_projection_dim=16,
        joint_attention_dim=t5_dim,
        pooled_projection_dim=sum(clip_dims),
    ).eval()
    tokenizer_3 = t5_tokenizer()
    return StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=flow_vae(),
        text_encoder=clip_text_encoder(clip_dims[0], projection=clip_dims[0]),
        tokenizer=clip_tokenizer(),
        text_encoder_2=clip_text_encoder(clip_dims[1], projection=clip_dims[1]),
        tokenizer_2=clip_tokenizer(pad_token="!"),
        text_encoder_3=t5_encoder(tokenizer_3, t5_dim),
        tokenizer_3=tokenizer_3,
    )


def build_flux(
    guidance_embeds: bool = True, t5_dim: int = 32, sample_size: int = 8
) -> DiffusionPipeline:
    """FLUX-shaped: CLIP (pooled) + T5, 16 latent channels packed 2x2 into 64, flow matching.

    `guidance_embeds=True` is FLUX-dev (distilled guidance, dynamic shifting as dev's scheduler
    config has it); False is FLUX-schnell (no guidance, plain schedule). FluxPipeline hard-codes
    a default size of 128 latents; the builder lowers it to `sample_size` so calls without a
    size stay tiny.
    """
    from diffusers import FluxPipeline, FluxTransformer2DModel

    torch.manual_seed(0)
    clip_dim = 16
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=t5_dim,
        pooled_projection_dim=clip_dim,
        guidance_embeds=guidance_embeds,
        axes_dims_rope=(4, 4, 8),
    ).eval()
    scheduler = (
        FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True)
        if guidance_embeds
        else FlowMatchEulerDiscreteScheduler(shift=1.0)
    )
    tokenizer_2 = t5_tokenizer()
    pipe = FluxPipeline(
        transformer=transformer,
        scheduler=scheduler,
        vae=flow_vae(),
        text_encoder=clip_text_encoder(clip_dim),
        tokenizer=clip_tokenizer(),
        text_encoder_2=t5_encoder(tokenizer_2, t5_dim),
        tokenizer_2=tokenizer_2,
    )
    pipe.default_sample_size = sample_size
    return pipe


def build_flux_schnell() -> DiffusionPipeline:
    """FLUX-schnell-shaped: no guidance embedding, unshifted schedule."""
    return build_flux(guidance_embeds=False)


def build_pixart_sigma(t5_dim: int = 32, sample_size: int = 8) -> DiffusionPipeline:
    """PixArt-Sigma-shaped: T5 (300 tokens + attention mask), a DiT with learned variance
    (8 output channels for 4 latent ones), DPM-Solver++ as the released model ships.
    Call it with `use_resolution_binning=False`."""
    from diffusers import DPMSolverMultistepScheduler, PixArtSigmaPipeline, PixArtTransformer2DModel

    torch.manual_seed(0)
    transformer = PixArtTransformer2DModel(
        sample_size=sample_size,
        num_layers=1,
        patch_size=2,
        attention_head_dim=8,
        num_attention_heads=2,
        caption_channels=t5_dim,
        in_channels=4,
        cross_attention_dim=16,
        out_channels=8,
        attention_bias=True,
        activation_fn="gelu-approximate",
        num_embeds_ada_norm=1000,
        norm_type="ada_norm_single",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
    ).eval()
    tokenizer = t5_tokenizer()
    return PixArtSigmaPipeline(
        tokenizer=tokenizer,
        text_encoder=t5_encoder(tokenizer, t5_dim),
        vae=tiny_vae(),
        transformer=transformer,
        scheduler=DPMSolverMultistepScheduler(),
    )


BUILDERS: dict[str, Callable[[], DiffusionPipeline]] = {
    "sd": build_sd,
    "sd2": build_sd2,
    "sdxl": build_sdxl,
    "hunyuan-dit": build_hunyuan_dit,
}

# Families beyond the paper's (16-channel flow-matching latents, long T5 prompt embeddings).
BEYOND_BUILDERS: dict[str, Callable[[], DiffusionPipeline]] = {
    "sd3": build_sd3,
    "flux-dev": build_flux,
    "flux-schnell": build_flux_schnell,
    "pixart-sigma": build_pixart_sigma,
}

ALL_BUILDERS = {**BUILDERS, **BEYOND_BUILDERS}

# Keyword arguments every call of that tiny pipeline needs (beyond prompt and generator).
CALL_KWARGS: dict[str, dict[str, object]] = {
    "sd": {},
    "sd2": {},
    "sdxl": {},
    "hunyuan-dit": {"use_resolution_binning": False},
    "sd3": {},
    "flux-dev": {},
    "flux-schnell": {},
    "pixart-sigma": {"use_resolution_binning": False, "clean_caption": False},
}


def tiny_npnet(
    text_dim: int,
    size: int = 16,
    family: str | None = None,
    channels: int = 4,
    text_tokens: int = 77,
    text_reduction: str = "none",
) -> NPNet:
    """A fast random NPNet (a one-block ViT as residual backbone) for `size`x`size` latents."""
    torch.manual_seed(0)
    config = NPNetConfig(
        channels=channels,
        height=size,
        width=size,
        text_tokens=text_tokens,
        text_dim=text_dim,
        text_reduction=text_reduction,
        svd_hidden=8,
        svd_mlp_hidden=16,
        svd_heads=2,
        backbone="vit_tiny_patch16_224",
        backbone_kwargs={
            "img_size": 16,
            "patch_size": 8,
            "embed_dim": 16,
            "depth": 1,
            "num_heads": 2,
        },
        backbone_input_size=16,
        family=family,
    )
    net = NPNet(config)
    with torch.no_grad():
        net.alpha.fill_(0.5)
        net.beta.fill_(0.5)
    return net.eval()


def make_identity(net: NPNet) -> NPNet:
    """Zero alpha, beta and the SVD branch's last layer: the net then returns its input."""
    with torch.no_grad():
        for tensor in (net.alpha, net.beta, net.svd.mlp4[2].weight, net.svd.mlp4[2].bias):
            tensor.zero_()
    return net


def sd_teacher_setup(prompts: list[str]) -> tuple:
    """A tiny SD pipeline, teacher `Rows` of `prompts` (seeds 3, 4, ...) and a 2-step
    collection sampler scored by toy-soft: a continuous score of the image itself, so every
    candidate gets a distinct value."""
    pipe = build_sd()
    adapter = adapter_for(pipe)
    seeds = list(range(3, 3 + len(prompts)))
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    source = adapter.initial_noise(len(prompts), None, None, generators, torch.float32)
    rows = Rows(prompts, list(range(len(prompts))), seeds, source, adapter.call_kwargs(prompts))
    sampler = CollectionSampler(pipe, get_scorer("toy-soft"), SamplerSettings(steps=2), 5)
    return pipe, rows, sampler
