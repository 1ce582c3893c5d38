"""Tiny random teacher models with real tokenizers, saved as ordinary Hugging Face folders.

Each folder loads back through ``AutoTokenizer.from_pretrained`` / ``AutoModel.from_pretrained``
exactly like a downloaded model, so tests exercise the real loading path offline:

    bert     BertModel,    hidden 32, WordPiece tokenizer, [CLS] … [SEP]
    roberta  RobertaModel, hidden 48, byte-level BPE,      <s> … </s>, pad id 1
    llama    LlamaModel,   hidden 64, byte-level BPE,      <s> first, NO pad token (as Llama ships)

Building all three takes well under a second once transformers is imported.
"""

from __future__ import annotations

from pathlib import Path

SENTENCES = [
    "How do I boil an egg?",
    "Put the egg in boiling water for nine minutes.",
    "What is the capital of France?",
    "Paris is the capital of France.",
    "The cat sat on the mat while the dog slept.",
    "Python lists keep their items in order.",
    "Как дела? Всё хорошо, спасибо.",
    "你好，世界。今天天气很好。",
    "I love pizza 🍕 and coffee ☕!",
]
TINY_DIMS = {"bert": 32, "roberta": 48, "llama": 64}


def build_tiny_teachers(root: str | Path) -> dict[str, str]:
    """Build the three tiny teachers under ``root``; returns name -> folder."""
    import torch

    root = Path(root)
    builders = {"bert": _build_bert, "roberta": _build_roberta, "llama": _build_llama}
    folders = {}
    for name, build in builders.items():
        folder = root / f"tiny-{name}"
        torch.manual_seed(0)
        tokenizer, model = build()
        model.eval()
        tokenizer.save_pretrained(folder)
        model.save_pretrained(folder)
        folders[name] = str(folder)
    return folders


def _build_bert():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(SENTENCES, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]"
    )
    config = BertConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=TINY_DIMS["bert"], num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, pad_token_id=tok.token_to_id("[PAD]"),
    )
    return tokenizer, BertModel(config)


def _byte_level_bpe(specials: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(SENTENCES, trainer)
    return tok


def _build_roberta():
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast, RobertaConfig, RobertaModel

    tok = _byte_level_bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
    )
    config = RobertaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=TINY_DIMS["roberta"], num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=96, max_position_embeddings=130, pad_token_id=tok.token_to_id("<pad>"),
        bos_token_id=tok.token_to_id("<s>"), eos_token_id=tok.token_to_id("</s>"),
    )
    return tokenizer, RobertaModel(config)


def _build_llama():
    from tokenizers import processors
    from transformers import LlamaConfig, LlamaModel, PreTrainedTokenizerFast

    tok = _byte_level_bpe(["<s>", "</s>", "<unk>"])
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    # Like real Llama checkpoints: no pad token, so the teacher must set one itself.
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=TINY_DIMS["llama"], num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=128, max_position_embeddings=256,
        bos_token_id=bos, eos_token_id=tok.token_to_id("</s>"), pad_token_id=None,
    )
    return tokenizer, LlamaModel(config)
