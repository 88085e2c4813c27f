"""Session fixtures for the runner tests (run_glue, run_seq2seq, run_multitask_encoder): tiny random BERT and RoBERTa models with real
tokenizers built from a small vocabulary, and GLUE-format TSV folders written by the tests."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

WORDS = ("the a cat dog bird sat ran flew on under over mat log tree quickly slowly red blue green small big "
         "house car river sun moon ate saw liked it was not very good bad happy sad").split()
MAX_POSITIONS = 64


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 10)))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> str:
    """A 2-layer, hidden-32 BERT with a WordPiece tokenizer over WORDS."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_bert")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = sorted(set("".join(WORDS)))
    vocab = list(dict.fromkeys(specials + sorted(set(WORDS)) + letters + [f"##{c}" for c in letters] + [".", ","]))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=48, max_position_embeddings=MAX_POSITIONS)
    BertModel(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_roberta_dir(tmp_path_factory) -> str:
    """A 2-layer, hidden-32 RoBERTa with a byte-level BPE tokenizer trained on a few sentences."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_roberta")
    rng = random.Random(0)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([sentence(rng) for _ in range(200)], vocab_size=400, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    bpe.save_model(str(folder))
    tokenizer = RobertaTokenizerFast(vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt"))
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=48, max_position_embeddings=MAX_POSITIONS + 2, pad_token_id=1,
                           bos_token_id=0, eos_token_id=2, type_vocab_size=1)
    RobertaModel(config).save_pretrained(folder)
    return str(folder)


def without_dropout(source: str, folder: Path) -> str:
    """A copy of the model folder ``source`` with every dropout probability 0, for runs compared exactly."""
    shutil.copytree(source, folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config.update({key: 0.0 for key, value in config.items() if "dropout" in key and isinstance(value, float)})
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return str(folder)


@pytest.fixture(scope="session")
def tiny_roberta_no_dropout_dir(tiny_roberta_dir, tmp_path_factory) -> str:
    return without_dropout(tiny_roberta_dir, tmp_path_factory.mktemp("exact") / "roberta")


@pytest.fixture(scope="session")
def tiny_t5_no_dropout_dir(tiny_t5_dir, tmp_path_factory) -> str:
    return without_dropout(tiny_t5_dir, tmp_path_factory.mktemp("exact") / "t5")


def exported_tensors(output_dir) -> dict:
    """Every weight a finished run exported (its checkpoints and binary mask files left out), keyed by file and
    tensor name."""
    import torch
    from safetensors.torch import load_file

    tensors = {}
    for path in sorted(Path(output_dir).rglob("*")):
        relative = path.relative_to(output_dir).as_posix()
        if relative.startswith("checkpoint-"):
            continue
        if path.suffix == ".safetensors":
            loaded = load_file(path)
        elif path.suffix == ".bin" and path.name.startswith("pytorch_"):
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        else:
            continue
        tensors.update({f"{relative}:{name}": value for name, value in loaded.items()})
    return tensors


def assert_same_tensors(first: dict, second: dict) -> None:
    import torch

    assert first and sorted(first) == sorted(second)
    for name, value in first.items():
        assert torch.allclose(value, second[name], rtol=1e-4, atol=1e-9), name  # one step moves a bias by ~1e-5


def write_tsv(path: Path, header, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (["\t".join(header)] if header else []) + ["\t".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def make_glue_dir(root: Path, n_train: int = 32, n_dev: int = 16) -> Path:
    """RTE, STS-B and CoLA folders in the GLUE TSV layout."""
    rng = random.Random(1)
    for split, n in (("train", n_train), ("dev", n_dev)):
        rte = [[str(i), sentence(rng), sentence(rng), ("entailment", "not_entailment")[i % 2]] for i in range(n)]
        write_tsv(root / "RTE" / f"{split}.tsv", ["index", "sentence1", "sentence2", "label"], rte)
        stsb = [[str(i), "main-captions", "MSRvid", "2012test", f"{i:04d}", "none", "none", sentence(rng),
                 sentence(rng), f"{(i % 11) * 0.5:.3f}"] for i in range(n)]
        write_tsv(root / "STS-B" / f"{split}.tsv", ["index", "genre", "filename", "year", "old_index", "source1",
                                                     "source2", "sentence1", "sentence2", "score"], stsb)
        cola = [["gj04", str(i % 2), "" if i % 2 else "*", sentence(rng)] for i in range(n)]
        write_tsv(root / "CoLA" / f"{split}.tsv", None, cola)
    return root


@pytest.fixture(scope="session")
def glue_dir(tmp_path_factory) -> str:
    return str(make_glue_dir(tmp_path_factory.mktemp("glue")))


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory) -> str:
    """A 2+2-layer, d_model-32 T5 with a WordPiece tokenizer over WORDS, label words and digits."""
    import torch
    from transformers import BertTokenizerFast, T5Config, T5ForConditionalGeneration

    folder = tmp_path_factory.mktemp("tiny_t5")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = sorted(set(WORDS) | {"entailment", "not", "_", "sentence1", "sentence2", "rte", "stsb", ":",
                                 "summarize", "translate", "romanian", "to", "english", "."})
    letters = sorted(set("".join(words)) | set("0123456789"))
    vocab = list(dict.fromkeys(specials + words + letters + [f"##{c}" for c in letters]))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(vocab), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_decoder_layers=2,
                      num_heads=4, decoder_start_token_id=tokenizer.pad_token_id, pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.sep_token_id)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    return str(folder)


def write_jsonl(path: Path, rows) -> None:
    import json
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


@pytest.fixture(scope="session")
def seq2seq_data_dir(tmp_path_factory) -> str:
    """<task>/{train,validation,test}.jsonl for rte and stsb (raw GLUE fields), xsum and wmt16_ro_en."""
    root = tmp_path_factory.mktemp("seq2seq_data")
    rng = random.Random(2)
    for split, n in (("train", 24), ("validation", 6), ("test", 6)):
        write_jsonl(root / "rte" / f"{split}.jsonl", [{"sentence1": sentence(rng), "sentence2": sentence(rng),
                                                      "label": i % 2} for i in range(n)])
        write_jsonl(root / "stsb" / f"{split}.jsonl", [{"sentence1": sentence(rng), "sentence2": sentence(rng),
                                                       "label": (i % 6) * 0.8} for i in range(n)])
        write_jsonl(root / "xsum" / f"{split}.jsonl", [{"document": sentence(rng) + " " + sentence(rng),
                                                       "summary": sentence(rng)} for _ in range(n)])
        write_jsonl(root / "wmt16_ro_en" / f"{split}.jsonl", [{"translation": {"ro": sentence(rng),
                                                                              "en": sentence(rng)}} for _ in range(n)])
    return str(root)
