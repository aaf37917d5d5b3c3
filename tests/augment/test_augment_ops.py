"""EDA's word operations, the WordNet reader, the paraphrase filter and the augmented rows (no model)."""

from __future__ import annotations

import json
import os
import random
from collections import Counter

import pytest

from tuneproof.augment import (
    WORDNET_INSTALL,
    WordNet,
    augmented_rows,
    check_paraphrase,
    eda_variants,
    find_wordnet,
    open_wordnet,
    random_delete,
    random_swap,
    synonym_replace,
)
from tuneproof.config import load_config
from tuneproof.errors import ConfigError, TuneproofError


class Synonyms:
    """A lexicon of our own: the interface synonym replacement reads."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    def synonyms(self, word: str) -> list[str]:
        return self.table.get(word, [])


def test_wordnet_reader_finds_synonyms_through_base_forms_exceptions_and_markers(tiny_wordnet):
    wn = WordNet(tiny_wordnet)
    assert wn.synonyms("film") == ["movie", "picture show"]  # underscores become spaces
    assert wn.synonyms("films") == ["movie", "picture show"]  # morphy's noun rule: -s
    assert wn.synonyms("Movie") == ["film", "picture show"]
    assert wn.synonyms("geese") == []  # the exception list gives goose, whose synset has no other lemma
    assert wn.synonyms("boring") == ["dull"]  # the adjective marker (a) is not part of the word
    assert wn.synonyms("acting") == ["play"]  # morphy's verb rule: -ing
    assert wn.synonyms("unknownword") == []


def test_synonym_replacement_changes_alpha_of_the_words_never_stopwords_and_keeps_case_and_punctuation():
    lex = Synonyms({"film": ["movie"], "the": ["thee"], "plot": ["story"], "actor": ["player"]})
    text = "The film was long. The film, again! Its plot and the actor were dull"
    # 13 words, alpha 0.1: max(1, int(1.3)) = 1 word replaced, everywhere it occurs
    out = synonym_replace(text, lex, 0.1, random.Random(0))
    changed = [w for w in ("film", "plot", "actor") if w not in out]
    assert len(changed) == 1 and "The " in out and "thee" not in out.lower()
    if changed == ["film"]:
        assert out.startswith("The movie was long. The movie, again!")
    # alpha 0.25: int(13 * 0.25) = 3: every replaceable word changes
    out = synonym_replace("Film " + text, lex, 0.25, random.Random(1))
    assert out.startswith("Movie ") and "story" in out and "player" in out and "film" not in out.lower()


def test_swap_and_delete_change_the_expected_number_of_words():
    words = "one two three four five six seven eight nine ten".split()
    swapped = random_swap(" ".join(words), 0.2, random.Random(3)).split()
    assert Counter(swapped) == Counter(words) and swapped != words
    # alpha 0.2 of 10 words: 2 swaps move at most 4 words
    assert sum(a != b for a, b in zip(swapped, words)) <= 4
    deleted = [random_delete(" ".join(words), 0.3, random.Random(s)).split() for s in range(200)]
    assert all(d and all(w in words for w in d) for d in deleted)
    mean_drop = sum(len(words) - len(d) for d in deleted) / len(deleted) / len(words)
    assert 0.25 < mean_drop < 0.35  # each word dropped with probability alpha
    assert random_delete("alone", 0.9, random.Random(0)) == "alone"
    assert random_delete("a b", 1.0, random.Random(0)) in ("a", "b")  # one word stays when all would go


def test_variants_are_deterministic_per_record_and_unchanged_draws_are_counted():
    text = "one two three four five six"
    a = eda_variants(text, "data.jsonl:4", "swap", n=3, alpha=0.2, seed=0)
    assert a == eda_variants(text, "data.jsonl:4", "swap", n=3, alpha=0.2, seed=0)
    assert a != eda_variants(text, "data.jsonl:5", "swap", n=3, alpha=0.2, seed=0)
    assert a != eda_variants(text, "data.jsonl:4", "swap", n=3, alpha=0.2, seed=1)
    assert len(set(a[0])) == len(a[0]) and text not in a[0] and len(a[0]) + a[1] == 3
    # no word with a synonym: every draw gives the text back, and no variant is made
    assert eda_variants("nothing here matches", "r", "synonym", n=2, alpha=0.1, seed=0, lexicon=Synonyms({})) == ([], 2)


def test_missing_wordnet_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.delenv("TUNEPROOF_WORDNET", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TuneproofError, match="index.noun, data.noun, index.verb, data.verb missing") as err:
        open_wordnet(empty)
    assert "apt-get install wordnet-base" in str(err.value) and WORDNET_INSTALL in str(err.value)
    monkeypatch.setenv("TUNEPROOF_WORDNET", str(empty))
    assert find_wordnet() == empty and find_wordnet(tmp_path / "other") == tmp_path / "other"  # config before env


def test_real_wordnet_from_the_debian_package():
    root = find_wordnet(os.environ.get("TUNEPROOF_WORDNET") or "/usr/share/wordnet")
    if not (root / "index.noun").is_file():
        if os.environ.get("CI"):
            pytest.fail("CI is set but WordNet is missing: .ci/run must install it (.ci/wordnet.sh)")
        pytest.skip(f"WordNet not installed: {WORDNET_INSTALL}")
    wn = WordNet(root)
    assert "movie" in wn.synonyms("film") and "movie" in wn.synonyms("films")
    assert "goose" not in wn.synonyms("geese") and wn.synonyms("geese")  # goose's synsets, through noun.exc
    assert wn.synonyms("the") == []


@pytest.mark.parametrize(("candidate", "why"), [
    ("", "empty"),
    ("  ", "empty"),
    ("What is the capital city of France?", None),
    ("what is the CAPITAL of france", "identical to the source"),
    ("Tell me, in one word and with no other text at all, which city is the capital of France please", "more than 2x the source's words"),
    ("France?", "less than 1/2 of the source's words"),
    ("Which city, Paris, is the capital of France?", "contains the expected answer"),
])  # fmt: skip
def test_paraphrase_filter(candidate, why):
    assert check_paraphrase("What is the capital of France?", candidate, max_ratio=2.0, answer="Paris") == why


def test_a_paraphrase_may_keep_an_answer_the_prompt_already_held():
    src = "Is Paris the capital of France?"
    assert check_paraphrase(src, "Is the capital of France Paris?", max_ratio=2.0, answer="Paris") is None


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_augmented_rows_carry_their_source_and_keep_the_label(tmp_path, tiny_wordnet):
    train = _write(tmp_path / "train.jsonl", [{"id": f"d.jsonl:{i}", "text": f"the film {i} was wonderful and long", "label": "pos",
                                               "source": "web"} for i in range(1, 4)])  # fmt: skip
    cfg = load_config({"name": "a", "task": "classification", "data": {"path": str(train)},
                       "augment": {"methods": ["synonym", "swap"], "n_aug": 2, "wordnet": str(tiny_wordnet)}})  # fmt: skip
    rows, info = augmented_rows(cfg, train, "synonym")
    assert info["sources"] == 3 and info["added"] == len(rows) and info["not_run"] is None
    assert 3 <= len(rows) <= 6 and len(rows) + info["unchanged"] == 6
    for r in rows:
        src = r["augmented_from"]
        assert r["augmentation"] == "synonym" and r["id"].startswith(src + "~synonym") and r["label"] == "pos"
        assert r["source"] == "web" and r["text"] != f"the film {src.split(':')[1]} was wonderful and long"
    assert {r["augmented_from"] for r in rows} == {"d.jsonl:1", "d.jsonl:2", "d.jsonl:3"}
    assert len({r["id"] for r in rows}) == len(rows)


def test_synonym_without_wordnet_is_not_run_and_says_how_to_install(tmp_path):
    train = _write(tmp_path / "train.jsonl", [{"id": "d:1", "text": "a film", "label": "x"}])
    cfg = load_config({"name": "a", "task": "classification", "data": {"path": str(train)},
                       "augment": {"methods": ["synonym"], "wordnet": str(tmp_path / "nowhere")}})  # fmt: skip
    rows, info = augmented_rows(cfg, train, "synonym")
    assert rows == [] and "apt-get install wordnet-base" in info["not_run"]


def test_paraphrase_is_not_faked_for_an_encoder_only_classifier(tmp_path, tiny_bert_dir):
    train = _write(tmp_path / "train.jsonl", [{"id": "d:1", "text": "a film", "label": "x"}])
    cfg = load_config({"name": "a", "task": "classification", "data": {"path": str(train)},
                       "model": {"name": str(tiny_bert_dir)}, "augment": {"methods": ["paraphrase"]}})  # fmt: skip
    rows, info = augmented_rows(cfg, train, "paraphrase")
    assert rows == [] and info["not_run"].startswith("paraphrase: not available for an encoder-only base model")


def test_config_rejects_word_operations_for_sft_and_a_stage_with_nothing_to_test():
    base = {"name": "a", "data": {"path": "d.jsonl"}}
    with pytest.raises(ConfigError, match=r"\['swap'\] change a classification text word by word"):
        load_config({**base, "task": "sft", "augment": {"methods": ["swap", "paraphrase"]}})
    with pytest.raises(ConfigError, match="pipeline.stages.augment is true, but augment.methods lists no valid method"):
        load_config({**base, "task": "classification", "pipeline": {"stages": {"augment": True}}})
    cfg = load_config({**base, "task": "classification"})
    assert cfg.pipeline.stages["augment"] is False and cfg.augment.methods == []  # off unless configured
