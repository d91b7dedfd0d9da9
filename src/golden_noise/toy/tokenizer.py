"""An offline word-level tokenizer for the toy vocabulary, as a transformers fast tokenizer.

Pipelines call ``tokenizer(prompt, padding="max_length", max_length=model_max_length)``; the
longest toy prompt is 12 words, so with ``<bos>``/``<eos>`` 16 positions suffice.
"""

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from golden_noise.toy.grammar import COLOURS, COUNT_WORDS, SHAPES

MAX_LENGTH = 16
SPECIAL = ("<pad>", "<unk>", "<bos>", "<eos>")
WORDS = (
    "a", "and", "on", "the", "left", "right", "top", "bottom",
    *COUNT_WORDS, *COLOURS, *SHAPES, *(f"{s}s" for s in SHAPES),
)  # fmt: skip


def build_tokenizer() -> PreTrainedTokenizerFast:
    """The toy tokenizer: lower-cased whitespace words, ``<bos> words <eos>``, padded."""
    vocab = {tok: i for i, tok in enumerate((*SPECIAL, *WORDS))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>",
        special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=MAX_LENGTH,
    )
