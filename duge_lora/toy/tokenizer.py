"""A CLIP BPE tokenizer for the toy world, generated from its vocabulary (no download).

CLIP's BPE splits a word into characters, marks the last one with ``</w>``, then applies merges
by rank. We write merges so that every world word becomes exactly one token, check that with a
faithful simulation of that algorithm, and add merges until it holds (a merge learnt for one
word can break another word's chain, e.g. ``r e`` from "red" inside "green").
"""
from __future__ import annotations

import json
from pathlib import Path

from .world import vocabulary

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_LENGTH = 16  # tokens per prompt, BOS and EOS included


def _symbols(word: str) -> list[str]:
    return list(word[:-1]) + [word[-1] + "</w>"]


def _bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """CLIP's merge loop: repeatedly merge every occurrence of the lowest-ranked pair."""
    parts = _symbols(word)
    while len(parts) > 1:
        pairs = {(a, b) for a, b in zip(parts, parts[1:])}
        best = min(pairs, key=lambda p: ranks.get(p, float("inf")))
        if best not in ranks:
            break
        merged, i = [], 0
        while i < len(parts):
            if i < len(parts) - 1 and (parts[i], parts[i + 1]) == best:
                merged.append(parts[i] + parts[i + 1])
                i += 2
            else:
                merged.append(parts[i])
                i += 1
        parts = merged
    return parts


def build_bpe(words: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary (token -> id) and ordered merges that turn every word into one token."""
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for _ in range(20):
        broken = [w for w in words if len(_bpe(w, ranks)) > 1]
        if not broken:
            break
        for word in broken:
            parts = _bpe(word, ranks)   # continue from where the current merges leave the word
            while len(parts) > 1:
                pair = (parts[0], parts[1])
                if pair not in ranks:
                    ranks[pair] = len(merges)
                    merges.append(pair)
                parts = [parts[0] + parts[1]] + parts[2:]
    else:
        raise RuntimeError("could not find merges that make every world word one token")
    tokens = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [chr(c) + "</w>" for c in range(ord("a"), ord("z") + 1)]
    for a, b in merges:
        if a + b not in tokens:
            tokens.append(a + b)
    tokens += [BOS, EOS]
    return {t: i for i, t in enumerate(tokens)}, merges


def write_tokenizer(folder: str | Path, words: list[str] | None = None) -> Path:
    """Write a loadable CLIPTokenizer for `words` (default: the world's vocabulary) into folder."""
    from transformers import CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = build_bpe(words or vocabulary())
    raw = folder / "_bpe"
    raw.mkdir(exist_ok=True)
    (raw / "vocab.json").write_text(json.dumps(vocab, indent=0))
    (raw / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    tok = CLIPTokenizer(str(raw / "vocab.json"), str(raw / "merges.txt"), pad_token=EOS,
                        model_max_length=MAX_LENGTH)
    tok.save_pretrained(str(folder))
    for f in raw.iterdir():
        f.unlink()
    raw.rmdir()
    return folder
