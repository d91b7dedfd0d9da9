"""Tiny random-weight text-to-image pipelines of each supported family, built offline.

Tests import this module as `tiny_pipelines` (pytest's default "prepend" import mode puts
`tests/`, which has no `__init__.py`, on `sys.path`). Each builder seeds torch itself, so the
same call gives the same weights; tokenizers are built in memory (the hub is unreachable), as
FIELD-NOTES describes. Configs follow the shape of diffusers' own `get_dummy_components`, with
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

from golden_noise.npnet import NPNet, NPNetConfig

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


def tiny_vae(blocks: int = 2) -> AutoencoderKL:
    """A VAE that downsamples 2**(blocks-1) times; 4 blocks gives the usual 8x."""
    return AutoencoderKL(
        block_out_channels=[8] * blocks,
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * blocks,
        up_block_types=["UpDecoderBlock2D"] * blocks,
        latent_channels=4,
        norm_num_groups=8,
        layers_per_block=1,
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
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer_2),
            d_model=t5_dim,
            d_ff=16,
            d_kv=8,
            num_layers=1,
            num_heads=2,
            relative_attention_num_buckets=8,
        )
    ).eval()
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


BUILDERS: dict[str, Callable[[], DiffusionPipeline]] = {
    "sd": build_sd,
    "sd2": build_sd2,
    "sdxl": build_sdxl,
    "hunyuan-dit": build_hunyuan_dit,
}

# Keyword arguments every call of that tiny pipeline needs (beyond prompt and generator).
CALL_KWARGS: dict[str, dict[str, object]] = {
    "sd": {},
    "sd2": {},
    "sdxl": {},
    "hunyuan-dit": {"use_resolution_binning": False},
}


def tiny_npnet(text_dim: int, size: int = 16, family: str | None = None) -> NPNet:
    """A fast random NPNet (a one-block ViT as residual backbone) for `size`x`size` latents."""
    torch.manual_seed(0)
    config = NPNetConfig(
        height=size,
        width=size,
        text_dim=text_dim,
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
