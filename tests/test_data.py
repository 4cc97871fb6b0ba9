"""Translation data layer: Ding extraction, toy grammar, corpus loading, joint BPE, max-tokens batching, collator."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from datasets import Dataset, DatasetDict
from tokenizers import Tokenizer, models
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from hf_gradinit.translation.data import (
    EOS_ID,
    PAD_ID,
    TARGET_TOKENIZER_DIR,
    UNK_ID,
    CorpusUnavailableError,
    MaxTokensBatchSampler,
    example_lengths,
    extract_ding_pairs,
    generate_toy_pairs,
    load_tokenizer,
    load_tokenizers,
    load_translation_corpus,
    max_tokens_batches,
    parse_ding_line,
    restrict_bpe_vocabulary,
    tokenize_translation,
    toy,
    train_joint_bpe,
    train_separate_bpe,
    translation_collator,
)
from hf_gradinit.translation.data.ding import is_sentence, strip_annotations

FIXTURE = Path(__file__).parent / "fixtures" / "ding_sample.txt"

FIXTURE_PAIRS = [
    ("Mein Fahrrad steht im Hof.", "My bicycle is in the yard."),
    ("Es regnet seit gestern ohne Pause.", "It has been raining non-stop since yesterday."),
    ("Regnet es bei euch noch?", "Is it still raining where you are?"),
    ("Der Hund rennt über die Wiese.", "The dog runs across the meadow."),
    ("Vorsicht, die Stufe ist rutschig!", "Careful, the step is slippery!"),
    ("Wann fährt der nächste Zug nach Hamburg?", "When does the next train to Hamburg leave?"),
    ("Sie liest jeden Abend ein Kapitel.", "She reads a chapter every evening."),
    ("Ich habe Hunger.", "I am hungry."),
    ("Bitte schließ das Fenster, es zieht.", "Please close the window, there is a draught."),
    ("Das Fenster klemmt.", "The window is stuck."),
    ("Der Brief kam zwei Tage zu spät an.", "The letter arrived two days too late."),
    ("Meine Uhr geht fünf Minuten vor.", "My watch is five minutes fast."),
    ("Hast du deinen Schirm dabei?", "Have you got your umbrella with you?"),
]


# --------------------------------------------------------------------------------------------------------- Ding


def test_ding_fixture_extraction_exact():
    # Comments, headwords, templates (etw./sth.), slash alternatives, ellipses, one-word slots, a line with unequal
    # slot counts and a duplicate pair are all dropped; annotations of every bracket kind are removed.
    assert extract_ding_pairs(FIXTURE) == FIXTURE_PAIRS


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Haus {n} [arch.] (Gebäude) <Bau>", "Haus"),
        ("Das Fenster (im Flur; oben) klemmt .", "Das Fenster klemmt."),
        ("Er ist ((sehr) alt).", "Er ist."),
        ("  viel   zu   spät  ", "viel zu spät"),
    ],
)
def test_strip_annotations(raw, clean):
    assert strip_annotations(raw) == clean


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Der Hund schläft im Korb.", True),
        ("Wo ist der Bahnhof?", True),
        ("Los!", False),  # too short
        ("der Hund schläft im Korb.", False),  # lower-case start: a phrase, not a sentence
        ("Der Hund schläft im Korb", False),  # no final punctuation
        ("Gib mir etw. Zeit, bitte.", False),  # placeholder
        ("Er gab sb. the book.", False),
        ("Ich trinke Tee/Kaffee gern.", False),  # slash alternatives
        ("Wir warten auf ... den Bus.", False),
    ],
)
def test_is_sentence(text, expected):
    assert is_sentence(text) is expected


def test_parse_ding_line_skips_comments_and_misaligned_lines():
    assert parse_ding_line("# Der Hund schläft im Korb. :: The dog sleeps in the basket.") == []
    assert parse_ding_line("Hund {m} | Der Hund bellt laut. :: dog | The dog barks loudly. | dogs") == []
    assert parse_ding_line("Hund {m} | Der Hund bellt laut. :: dog | The dog barks loudly.") == [
        ("Der Hund bellt laut.", "The dog barks loudly.")
    ]


def test_missing_ding_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "de-en"
    with pytest.raises(CorpusUnavailableError, match=r"apt-get install trans-de-en") as info:
        load_translation_corpus("ding", ding_path=missing)
    assert "toy" in str(info.value) and str(missing) in str(info.value)


def test_ding_corpus_through_the_loader():
    corpus, description = load_translation_corpus("ding", ding_path=FIXTURE, valid_size=2, test_size=3)
    assert {name: len(corpus[name]) for name in corpus} == {"train": 8, "validation": 2, "test": 3}
    rows = [tuple(row["translation"][lang] for lang in ("de", "en")) for name in corpus for row in corpus[name]]
    assert sorted(rows) == sorted(FIXTURE_PAIRS)
    assert "Ding" in description and str(FIXTURE) in description


def test_auto_picks_ding_when_present_else_toy(tmp_path):
    _, with_ding = load_translation_corpus("auto", ding_path=FIXTURE, valid_size=1, test_size=1)
    _, without = load_translation_corpus("auto", ding_path=tmp_path / "absent", toy_size=200)
    assert "Ding" in with_ding and "toy" in without


# ---------------------------------------------------------------------------------------------------------- toy


def test_toy_generator_is_deterministic_and_seeded():
    first = generate_toy_pairs(400, seed=3)
    assert first == generate_toy_pairs(400, seed=3)
    other = generate_toy_pairs(400, seed=4)
    assert first != other and len(set(first) & set(other)) < 100
    assert len(first) == 400 and len({de for de, _ in first}) == 400  # distinct sources
    assert toy.lexicon_size() >= 250


@pytest.mark.parametrize(
    ("noun", "plural", "determiner", "adjective", "case", "expected"),
    [
        ("Hund", False, "def", None, 0, ("der Hund", "the dog")),
        ("Hund", False, "def", None, 1, ("den Hund", "the dog")),
        ("Hund", False, "def", "groß", 0, ("der große Hund", "the big dog")),
        ("Hund", False, "def", "groß", 1, ("den großen Hund", "the big dog")),
        ("Hund", False, "indef", "alt", 0, ("ein alter Hund", "an old dog")),
        ("Hund", False, "indef", "alt", 1, ("einen alten Hund", "an old dog")),
        ("Haus", False, "indef", "klein", 1, ("ein kleines Haus", "a small house")),
        ("Haus", False, "def", "klein", 0, ("das kleine Haus", "the small house")),
        ("Katze", False, "our", "müde", 1, ("unsere müde Katze", "our tired cat")),
        ("Maus", True, "def", "leise", 0, ("die leisen Mäuse", "the quiet mice")),
        ("Maus", True, "indef", "leise", 1, ("leise Mäuse", "quiet mice")),
        ("Kind", True, "my", "klein", 0, ("meine kleinen Kinder", "my small children")),
        ("Apfel", False, "indef", None, 1, ("einen Apfel", "an apple")),
    ],
)
def test_toy_noun_phrase_agreement(noun, plural, determiner, adjective, case, expected):
    entry = next(n for n in toy.NOUNS if n.sg == noun)
    adj = next(a for a in toy.ADJECTIVES if a[0] == adjective) if adjective else None
    assert toy.noun_phrase(entry, plural, determiner, adj, case) == expected


@pytest.fixture(scope="module")
def toy_pairs():
    return generate_toy_pairs(3000, seed=0)


def _verb_forms(finite_only: bool = True) -> set[str]:
    verbs = toy.TRANSITIVE_VERBS + toy.INTRANSITIVE_VERBS + toy.CLAUSAL_VERBS
    return {form for verb in verbs for form in (verb.first_sg, verb.third_sg, verb.plural)}


def test_toy_weil_and_dass_clauses_are_verb_final(toy_pairs):
    verbs = _verb_forms()
    clauses = 0
    for de, _ in toy_pairs:
        for conjunction in ("weil", "dass"):
            # Verb forms are lower-case, nouns capitalised: compare case-sensitively ("spiele" vs "Spiele").
            for clause in (de[0].lower() + de[1:]).split(conjunction + " ")[1:]:
                words = clause.split(",")[0].rstrip(".?").split()
                assert words[-1] in verbs, de  # finite verb last
                assert not any(word in verbs for word in words[:-1]), de  # and nowhere else
                clauses += 1
    assert clauses > 500


def test_toy_main_clauses_are_verb_second(toy_pairs):
    verbs = _verb_forms()
    fronted = {adverb.capitalize(): english.capitalize() for adverb, english in toy.ADVERBS}
    checked = 0
    for de, en in toy_pairs:
        words = de.rstrip(".").split()
        if words[0] in fronted:  # adverb, then the finite verb, then the subject
            assert words[1] in verbs, de
            assert en.split()[1] not in {"does", "do"} or "not" in en
            checked += 1
        elif de.startswith("Weil "):  # fronted subordinate clause: the main clause starts with its verb
            assert de.split(", ", 1)[1].split()[0] in verbs, de
            checked += 1
        elif de.endswith("?"):  # yes/no question: verb first; English do-support
            assert words[0].lower() in verbs and en.split()[0] in {"Do", "Does"}, (de, en)
            checked += 1
    assert checked > 500


def test_toy_articles_agree_with_noun_gender_and_case(toy_pairs):
    gender = {noun.sg: noun.gender for noun in toy.NOUNS}
    plural_only = {noun.pl for noun in toy.NOUNS} - set(gender)
    expected = {"der": "m", "den": "m", "das": "n", "einen": "m", "ein": "mn", "eine": "f"}
    checked = 0
    for de, _ in toy_pairs:
        words = de.rstrip(".?").replace(",", "").split()
        for i, word in enumerate(words[:-1]):
            if word.lower() not in expected:
                continue
            noun = next(w for w in words[i + 1 :] if w[0].isupper())  # skip the (lower-case) adjective
            assert noun not in plural_only, de
            assert gender[noun] in expected[word.lower()], de
            checked += 1
    assert checked > 1000


def test_toy_english_agreement(toy_pairs):
    for de, en in toy_pairs:
        if " does not " in en or en.startswith("Does "):
            assert " nicht" in de or de.endswith("?")
        assert en[0].isupper() and en[-1] in ".?" and "  " not in en
        assert de[0].isupper() and de[-1] == en[-1]


# ------------------------------------------------------------------------------------------------ local / Hub


def _pairs(n: int) -> list[tuple[str, str]]:
    return [(f"Satz Nummer {i}.", f"Sentence number {i}.") for i in range(n)]


def test_local_jsonl_single_split_gets_seeded_splits(tmp_path):
    path = tmp_path / "corpus.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for i, (de, en) in enumerate(_pairs(100)):
            row = {"translation": {"de": de, "en": en}} if i % 2 else {"de": de, "en": en, "id": i}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    corpus, description = load_translation_corpus(str(path), valid_size=10, test_size=0.15, split_seed=1)
    assert isinstance(corpus, DatasetDict) and list(corpus) == ["train", "validation", "test"]
    assert [len(corpus[s]) for s in corpus] == [75, 10, 15]
    assert corpus["train"].column_names == ["translation"]
    seen = [row["translation"]["de"] for s in corpus for row in corpus[s]]
    assert sorted(seen) == sorted(de for de, _ in _pairs(100))
    again, _ = load_translation_corpus(str(path), valid_size=10, test_size=0.15, split_seed=1)
    other, _ = load_translation_corpus(str(path), valid_size=10, test_size=0.15, split_seed=2)
    assert again["test"]["translation"] == corpus["test"]["translation"]
    assert other["test"]["translation"] != corpus["test"]["translation"]
    assert str(path) in description


def test_local_tsv_direction_and_max_pairs(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"{en}\t{de}\n" for de, en in _pairs(50)), encoding="utf-8")
    corpus, description = load_translation_corpus(
        str(path), src_lang="en", tgt_lang="de", valid_size=5, test_size=5, max_pairs=12
    )
    assert [len(corpus[s]) for s in corpus] == [12, 5, 5]  # only train is capped
    row = corpus["validation"][0]["translation"]
    assert row["en"].startswith("Sentence") and row["de"].startswith("Satz")
    assert "en->de" in description and "capped at 12" in description


def test_local_directory_keeps_its_splits(tmp_path):
    pairs = _pairs(30)
    with (tmp_path / "train.jsonl").open("w", encoding="utf-8") as handle:
        for de, en in pairs[:20]:
            handle.write(json.dumps({"translation": {"de": de, "en": en}}) + "\n")
    (tmp_path / "valid.tsv").write_text("".join(f"{de}\t{en}\n" for de, en in pairs[20:24]), encoding="utf-8")
    Dataset.from_dict({"de": [p[0] for p in pairs[24:]], "en": [p[1] for p in pairs[24:]]}).to_parquet(
        str(tmp_path / "test.parquet")
    )
    corpus, _ = load_translation_corpus(str(tmp_path))
    assert [len(corpus[s]) for s in corpus] == [20, 4, 6]
    assert corpus["test"][0]["translation"] == {"de": pairs[24][0], "en": pairs[24][1]}


def test_bad_tsv_line_is_reported(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("eins\tone\nzwei only\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.tsv:2"):
        load_translation_corpus(str(path))


def test_missing_local_path_is_a_clear_error():
    with pytest.raises(CorpusUnavailableError, match="does not exist"):
        load_translation_corpus("./no/such/corpus.jsonl")


def test_offline_hub_id_fails_fast_with_the_fix():
    # conftest sets HF_DATASETS_OFFLINE=1 / HF_HUB_OFFLINE=1: no network is attempted.
    start = time.perf_counter()
    with pytest.raises(CorpusUnavailableError) as info:
        load_translation_corpus("wmt/wmt14", config_name="de-en")
    message = str(info.value)
    assert "wmt/wmt14" in message and "offline" in message
    assert "toy" in message and "ding" in message and "local" in message
    assert time.perf_counter() - start < 30


# -------------------------------------------------------------------------------------------------- tokenizer


@pytest.fixture(scope="module")
def toy_corpus():
    corpus, _ = load_translation_corpus("toy", toy_size=600, valid_size=50, test_size=50)
    return corpus


@pytest.fixture(scope="module")
def tokenizer(toy_corpus):
    return train_joint_bpe(toy_corpus, vocab_size=400)


def test_joint_bpe_ids_eos_and_round_trip(tokenizer, tmp_path):
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (PAD_ID, EOS_ID, UNK_ID)
    assert len(tokenizer) == 400
    sentence = "Der kleine Hund sieht den Mann, weil die Katze schläft."
    ids = tokenizer(sentence)["input_ids"]
    assert ids[-1] == EOS_ID and EOS_ID not in ids[:-1] and UNK_ID not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == sentence
    # Joint: English words are in the same vocabulary.
    assert UNK_ID not in tokenizer("The small dog sees the man.")["input_ids"]

    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(str(tmp_path))
    assert reloaded(sentence)["input_ids"] == ids
    assert (reloaded.pad_token_id, reloaded.eos_token_id) == (PAD_ID, EOS_ID)
    assert load_tokenizer(tmp_path)(sentence)["input_ids"] == ids


def test_train_joint_bpe_accepts_plain_texts():
    texts = [text for pair in generate_toy_pairs(200, seed=1) for text in pair]
    tokenizer = train_joint_bpe(texts, vocab_size=200)
    assert len(tokenizer) == 200 and tokenizer("Der Hund.")["input_ids"][-1] == EOS_ID


def test_tokenize_translation_columns_and_truncation(toy_corpus, tokenizer):
    tokens = tokenize_translation(toy_corpus, tokenizer, max_length=6)
    assert tokens["train"].column_names == ["input_ids", "labels"]
    assert [len(tokens[s]) for s in tokens] == [len(toy_corpus[s]) for s in toy_corpus]
    row, pair = tokens["validation"][0], toy_corpus["validation"][0]["translation"]
    full = tokenizer(pair["de"])["input_ids"]
    assert len(full) > 6 and row["input_ids"] == full[:5] + [EOS_ID]  # truncated, eos kept
    assert all(len(ids) <= 6 and ids[-1] == EOS_ID for ids in tokens["train"]["labels"])
    reverse = tokenize_translation(toy_corpus, tokenizer, src_lang="en", tgt_lang="de", max_length=64)
    assert reverse["test"][0]["input_ids"] == tokenizer(toy_corpus["test"][0]["translation"]["en"])["input_ids"]


def test_separate_bpe_vocabularies_split_as_the_joint_codes(toy_corpus, tokenizer, tmp_path):
    """fairseq's IWSLT'14 set-up: one BPE learnt on both sides, one vocabulary per side (the tokens it uses)."""
    source, target = train_separate_bpe(toy_corpus, vocab_size=400, src_lang="de", tgt_lang="en")
    assert len(source) != len(target) and max(len(source), len(target)) < len(tokenizer) == 400
    for side, side_tokenizer in (("de", source), ("en", target)):
        assert (side_tokenizer.pad_token_id, side_tokenizer.eos_token_id, side_tokenizer.unk_token_id) == (
            PAD_ID, EOS_ID, UNK_ID,
        )  # fmt: skip
        for pair in toy_corpus["train"].select(range(200))["translation"]:
            text = pair[side]
            ids = side_tokenizer(text)["input_ids"]
            # the joint codes' segmentation, in the side's own ids; decoding restores the text
            assert side_tokenizer.convert_ids_to_tokens(ids) == tokenizer.convert_ids_to_tokens(
                tokenizer(text)["input_ids"]
            )
            assert UNK_ID not in ids and side_tokenizer.decode(ids, skip_special_tokens=True) == text
        side_tokenizer.save_pretrained(tmp_path / side)
        assert load_tokenizer(tmp_path / side)(pair[side])["input_ids"] == side_tokenizer(pair[side])["input_ids"]
    # A word only the other side uses is not in a side's vocabulary (a sub-word split or <unk> instead).
    assert "▁weil" in source.get_vocab() and "▁weil" not in target.get_vocab()
    assert "▁because" in target.get_vocab() and "▁because" not in source.get_vocab()
    assert source("weil Ω")["input_ids"][-2:] == [UNK_ID, EOS_ID]  # a character no training text has

    source.save_pretrained(tmp_path / "pair")
    target.save_pretrained(tmp_path / "pair" / TARGET_TOKENIZER_DIR)
    loaded_source, loaded_target = load_tokenizers(tmp_path / "pair", shared_vocab=False)
    assert (loaded_source.get_vocab(), loaded_target.get_vocab()) == (source.get_vocab(), target.get_vocab())
    shared_source, shared_target = load_tokenizers(tmp_path / "pair", shared_vocab=True)
    assert shared_target is shared_source and shared_source.get_vocab() == source.get_vocab()


def test_restrict_bpe_vocabulary_keeps_the_merges_its_tokens_need(tokenizer):
    restricted = restrict_bpe_vocabulary(tokenizer, ["the flower"])
    joint_tokens = tokenizer.convert_ids_to_tokens(tokenizer("the flower")["input_ids"])
    assert joint_tokens == ["▁the", "▁f", "l", "ow", "er", "</s>"]
    assert restricted.convert_ids_to_tokens(restricted("the flower")["input_ids"]) == joint_tokens
    vocabulary = sorted(restricted.get_vocab(), key=restricted.get_vocab().get)
    assert vocabulary[:3] == ["<pad>", "</s>", "<unk>"]
    assert {"▁", "t", "h", "e", "f", "l", "o", "w", "r"} <= set(vocabulary)  # the pieces the tokens are merged from
    assert len(vocabulary) < 25 and "▁do" not in vocabulary


def test_restrict_bpe_vocabulary_and_load_tokenizer_errors(tmp_path):
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, "a": 3}
    word_level = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")))
    with pytest.raises(ValueError, match="needs a BPE tokenizer with <pad>, </s>, <unk> = 0, 1, 2"):
        restrict_bpe_vocabulary(word_level, ["a"])
    with pytest.raises(ValueError, match=f"No tokenizer could be loaded from .*{TARGET_TOKENIZER_DIR}"):
        load_tokenizer(tmp_path, subfolder=TARGET_TOKENIZER_DIR)
    missing = tmp_path / "runs" / "gradinit" / "typo"  # reads as neither a directory nor a Hub repo id
    hint = "not a local directory, so it was read as a Hub id: check the path"
    with pytest.raises(ValueError, match=rf"'.*typo' \({hint}\)"):
        load_tokenizer(missing)


def test_tokenize_translation_with_a_target_tokenizer(toy_corpus):
    source, target = train_separate_bpe(toy_corpus, vocab_size=400)
    tokens = tokenize_translation(toy_corpus, source, target_tokenizer=target)
    pair = toy_corpus["test"][0]["translation"]
    assert tokens["test"][0]["input_ids"] == source(pair["de"])["input_ids"]
    assert tokens["test"][0]["labels"] == target(pair["en"])["input_ids"] != source(pair["en"])["input_ids"]


# --------------------------------------------------------------------------------------------------- batching


def _random_lengths(n: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(1, 40) for _ in range(n)]


@pytest.mark.parametrize("num_replicas", [1, 2, 3, 4])
def test_max_tokens_batches_budget_coverage_and_equal_shards(num_replicas):
    lengths = _random_lengths(503)
    budget = 120
    shards = [
        max_tokens_batches(lengths, budget, seed=5, epoch=1, num_replicas=num_replicas, rank=rank)
        for rank in range(num_replicas)
    ]
    assert len({len(shard) for shard in shards}) == 1  # every rank steps the same number of times
    every = Counter(i for shard in shards for batch in shard for i in batch)
    assert sorted(every) == list(range(len(lengths))) and set(every.values()) == {1}
    for shard in shards:
        for batch in shard:
            assert batch and len(batch) * max(lengths[i] for i in batch) <= budget


def test_max_tokens_batches_are_length_buckets_and_fill_the_budget():
    lengths = _random_lengths(400, seed=1)
    batches = max_tokens_batches(lengths, 100, seed=0)
    spans = sorted((min(lengths[i] for i in b), max(lengths[i] for i in b)) for b in batches)
    for (_, high), (low, _) in zip(spans, spans[1:]):
        assert high <= low  # contiguous length ranges: examples are bucketed by length
    used = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert used > 0.8 * len(batches) * 100


def test_max_tokens_batches_determinism_and_epochs():
    lengths = _random_lengths(300)
    kwargs = dict(seed=7, num_replicas=2, rank=1)
    assert max_tokens_batches(lengths, 80, epoch=0, **kwargs) == max_tokens_batches(lengths, 80, epoch=0, **kwargs)
    assert max_tokens_batches(lengths, 80, epoch=0, **kwargs) != max_tokens_batches(lengths, 80, epoch=1, **kwargs)
    assert max_tokens_batches(lengths, 80, epoch=0, **kwargs) != max_tokens_batches(
        lengths, 80, epoch=0, seed=8, num_replicas=2, rank=1
    )


def test_max_tokens_batches_splits_batches_to_share_evenly_and_respects_max_sentences():
    lengths = [4] * 10  # budget 40 -> one batch of 10; 3 ranks need the count to divide by 3
    shards = [max_tokens_batches(lengths, 40, num_replicas=3, rank=r) for r in range(3)]
    assert [len(s) for s in shards] == [1, 1, 1]
    assert sorted(i for s in shards for b in s for i in b) == list(range(10))
    assert all(len(b) <= 3 for b in max_tokens_batches(lengths, 40, max_sentences=3))
    with pytest.raises(ValueError, match="ranks"):
        max_tokens_batches([4, 4], 40, num_replicas=3, rank=0)


def test_max_tokens_batches_rejects_examples_over_budget():
    with pytest.raises(ValueError, match="max_tokens"):
        max_tokens_batches([3, 50, 4], 20)


def test_batch_sampler_epochs_and_dataloader(toy_corpus, tokenizer):
    tokens = tokenize_translation(toy_corpus, tokenizer, max_length=64)["train"]
    lengths = example_lengths(tokens)
    assert lengths[0] == max(len(tokens[0]["input_ids"]), len(tokens[0]["labels"]))
    sampler = MaxTokensBatchSampler(lengths, max_tokens=256, num_replicas=2, rank=0, seed=3)
    epoch0 = list(sampler)
    assert len(sampler) == len(epoch0) and list(sampler) == epoch0
    sampler.set_epoch(1)
    assert list(sampler) != epoch0
    loader = torch.utils.data.DataLoader(tokens, batch_sampler=sampler, collate_fn=translation_collator(tokenizer))
    for batch in loader:
        assert batch["input_ids"].numel() <= 256 and batch["labels"].numel() <= 256


# --------------------------------------------------------------------------------------------------- collator


def test_collator_pads_inputs_and_masks_labels(tokenizer):
    pad = tokenizer.pad_token_id
    features = [{"input_ids": [5, 6, 1], "labels": [7, 1]}, {"input_ids": [8, 1], "labels": [9, 10, 11, 1]}]
    batch = translation_collator(tokenizer)(features)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].tolist() == [[5, 6, 1], [8, 1, pad]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[7, 1, -100, -100], [9, 10, 11, 1]]
    assert batch["input_ids"].dtype == torch.long
    padded = translation_collator(tokenizer, pad_to_multiple_of=8)(features)
    assert padded["input_ids"].shape == (2, 8) and padded["labels"].shape == (2, 8)
    assert padded["input_ids"][1, 2:].eq(pad).all() and padded["labels"][0, 2:].eq(-100).all()


def test_collated_batch_trains_marian(tokenizer):
    from tiny_models import tiny_marian

    model = tiny_marian(vocab_size=len(tokenizer), decoder_vocab_size=len(tokenizer), dropout=0.0)
    texts = [("Der Hund schläft.", "The dog sleeps."), ("Die Katze sieht den Mann nicht.", "The cat sees the man.")]
    features = [{"input_ids": tokenizer(de)["input_ids"], "labels": tokenizer(en)["input_ids"]} for de, en in texts]
    batch = translation_collator(tokenizer)(features)
    loss = model(**batch).loss
    # Same loss as computing it by hand over non-padded label positions only.
    logits = model(**batch).logits
    manual = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)
    assert torch.isfinite(loss) and torch.allclose(loss, manual)
