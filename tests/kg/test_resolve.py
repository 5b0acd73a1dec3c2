"""Entity resolution rules on hand-made names: each rule merges what it should, and names that differ stay
apart. Pure Python: no store."""

from __future__ import annotations

import random

from knowlm.kg.iri import normalise
from knowlm.kg.resolve import (
    Occurrence,
    Resolution,
    Resolver,
    acronym_letters,
    is_chinese_short,
    is_part_of,
    is_spelling_variant,
)


def occ(name: str, type_: str, doc: str, position: int = 0) -> Occurrence:
    return Occurrence((normalise(name), normalise(type_)), name, doc, position)


def merged(resolution: Resolution) -> set[tuple[str, str, str | None]]:
    """(rule, short side, long side, document) of the applied merges, by normalised name."""
    return {(m.rule, m.left[0], m.right[0], m.document) for m in resolution.merges if not m.rejected}


def same(resolution: Resolution, a: tuple[str, str], b: tuple[str, str], doc: str = "") -> bool:
    ka, kb = (normalise(a[0]), normalise(a[1])), (normalise(b[0]), normalise(b[1]))
    return resolution.entity(ka, doc) == resolution.entity(kb, doc)


def test_acronym_joins_the_one_long_name_of_its_initials() -> None:
    r = Resolver().resolve(
        [occ("United States Geological Survey", "organization", "d1"), occ("USGS", "organization", "d2")]
    )
    assert merged(r) == {("acronym", "usgs", "united states geological survey", None)}
    assert r.labels[r.canonical[("usgs", "organization")]] == "United States Geological Survey"
    assert acronym_letters("U.S.") == "us" and acronym_letters("Usgs") is None


def test_plus_and_hash_are_part_of_a_name() -> None:
    r = Resolver().resolve(
        [occ(n, "", "d1") for n in ("Samsung Galaxy S9", "Samsung Galaxy S9+", "C", "C++", "C#", "the C")]
    )
    assert merged(r) == {("same form", "the c", "c", None)}


def test_a_countrys_short_and_official_names_join_the_country_but_not_us_or_demonyms() -> None:
    r = Resolver().resolve(
        [
            occ("United States", "location", "d1"),
            occ("U.S.", "location", "d2"),
            occ("USA", "", "d3"),
            occ("American", "location", "d1"),  # Re-DocRED keeps demonyms apart more often than not
            occ("PRC", "location", "d5"),  # no "China" in this graph: nothing to join
        ]
    )
    assert merged(r) == {
        ("country name", "u.s.", "united states", None),
        ("country name", "usa", "united states", None),
    }
    assert r.labels[r.canonical[("usa", "")]] == "United States"
    demonyms = Resolver().resolve(
        [occ(n, "", "d1") for n in ("Germany", "Germans", "Argentina", "Argentine")]
    )
    assert merged(demonyms) == set()  # nor by spelling
    pronoun = Resolver().resolve([occ("United States", "location", "d1"), occ("us", "", "d2")])
    assert merged(pronoun) == set()  # "us" in lower case is no country


def test_an_acronym_of_two_long_names_joins_neither() -> None:
    r = Resolver().resolve(
        [
            occ("Bank of China", "organization", "d1"),
            occ("Board of Control", "organization", "d2"),
            occ("BOC", "organization", "d3"),
        ]
    )
    assert r.merges == []


def test_legal_suffix_and_chinese_company_suffix() -> None:
    r = Resolver().resolve(
        [
            occ("阿里巴巴集团", "组织机构", "d1"),
            occ("阿里巴巴", "组织机构", "d2"),
            occ("Apple Inc.", "organization", "d3"),
            occ("Apple", "organization", "d4"),
        ]
    )
    assert merged(r) == {
        ("legal suffix", "阿里巴巴", "阿里巴巴集团", None),
        ("legal suffix", "apple", "apple inc.", None),
    }


def test_chinese_short_name_skips_characters_of_one_long_name() -> None:
    r = Resolver().resolve([occ("北京大学", "组织机构", "d1"), occ("北大", "组织机构", "d2")])
    assert merged(r) == {("chinese short name", "北大", "北京大学", None)}
    # a plain prefix is another name (北京 / 北京大学), and a short name fitting two long names joins neither
    assert Resolver().resolve([occ("北京大学", "组织机构", "d1"), occ("北京", "组织机构", "d2")]).merges == []
    two = [
        occ("北京大学", "组织机构", "d1"),
        occ("北京大兴学院", "组织机构", "d1"),
        occ("北大", "组织机构", "d2"),
    ]
    assert not any(m.left[0] == "北大" for m in Resolver().resolve(two).merges)
    assert is_chinese_short("北大", "北京大学") and not is_chinese_short("大学", "北京大学")


def test_an_untyped_relation_argument_joins_the_typed_entity_of_its_name() -> None:
    r = Resolver().resolve([occ("Apple", "organization", "d1"), occ("apple", "", "d2")])
    assert merged(r) == {("same name", "apple", "apple", None)}
    assert r.entity(("apple", ""), "d2") == ("apple", "organization")
    # two typed entities of that name: the untyped one cannot say which
    two = [occ("Apple", "organization", "d1"), occ("Apple", "product", "d1"), occ("Apple", "", "d2")]
    assert Resolver().resolve(two).merges == []


def test_names_of_different_types_never_merge() -> None:
    r = Resolver().resolve(
        [
            occ("Washington", "person", "d1"),
            occ("Washington", "location", "d2"),
            occ("George Washington", "person", "d2", 0),
            occ("Washington", "location", "d2", 40),
        ]
    )
    assert not same(r, ("Washington", "person"), ("Washington", "location"), "d2")
    assert not same(r, ("George Washington", "person"), ("Washington", "location"), "d2")


def test_a_later_part_of_a_persons_name_is_that_person_only_in_its_document() -> None:
    r = Resolver().resolve(
        [
            occ("Bernard Vann", "person", "d1", 0),
            occ("Vann", "person", "d1", 50),
            occ("Vann", "person", "d2", 0),
        ]
    )
    assert merged(r) == {("in document", "vann", "bernard vann", "d1")}
    assert same(r, ("Vann", "person"), ("Bernard Vann", "person"), "d1")
    assert not same(r, ("Vann", "person"), ("Bernard Vann", "person"), "d2")
    # a short name mentioned before the full name, or matching two full names, is not resolved
    before = Resolver().resolve([occ("Vann", "person", "d1", 0), occ("Bernard Vann", "person", "d1", 9)])
    assert before.merges == []
    both = [
        occ("Bernard Vann", "person", "d1", 0),
        occ("Sarah Vann", "person", "d1", 5),
        occ("Vann", "person", "d1", 9),
    ]
    assert Resolver().resolve(both).merges == []
    assert is_part_of("Vann", "Bernard Vann") and not is_part_of("of", "Bank of China")


def test_an_acronym_found_next_to_its_name_is_merged_everywhere() -> None:
    r = Resolver().resolve(
        [
            occ("Swiss Federal Railways", "organization", "d1", 0),
            occ("SFR", "organization", "d1", 30),
            occ("SFR", "organization", "d2", 0),
        ],
    )
    assert same(r, ("SFR", "organization"), ("Swiss Federal Railways", "organization"), "d2")


def test_spelling_variants_of_one_letter_but_not_added_letters_or_numbers() -> None:
    r = Resolver().resolve([occ("Tchaikovsky", "person", "d1"), occ("Tchaikovski", "person", "d2")])
    assert [m.rule for m in r.merges] == ["spelling"]
    assert not is_spelling_variant("Germany", "German")
    assert not is_spelling_variant("World War I", "World War V")
    assert not is_spelling_variant("Catholics", "Catholic")
    assert (
        Resolver(spelling=False)
        .resolve([occ("Tchaikovsky", "person", "d1"), occ("Tchaikovski", "person", "d2")])
        .merges
        == []
    )


def test_values_are_never_resolved() -> None:
    r = Resolver().resolve([occ("1990", "time", "d1"), occ("1991", "time", "d2"), occ("1990", "", "d3")])
    assert r.merges == []


def test_the_users_aliases_merge_even_when_resolution_is_off() -> None:
    occurrences = [
        occ("NMBS", "organization", "d1"),
        occ("National Railway Company of Belgium", "organization", "d2"),
    ]
    r = Resolver(enabled=False).resolve(occurrences, aliases={"nmbs": "National Railway Company of Belgium"})
    assert merged(r) == {("alias", "nmbs", "national railway company of belgium", None)}
    assert Resolver(enabled=False).resolve(occurrences).merges == []


def test_a_rejected_merge_stays_recorded_and_unapplied() -> None:
    occurrences = [occ("阿里巴巴集团", "组织机构", "d1"), occ("阿里巴巴", "组织机构", "d2")]
    first = Resolver().resolve(occurrences)
    again = Resolver().resolve(occurrences, rejected=[first.merges[0].id])
    assert again.merges[0].rejected and again.canonical == {}
    assert first.merges[0].id == again.merges[0].id


def test_embeddings_propose_merges_only_when_given() -> None:
    occurrences = [
        occ("Brussels-South", "location", "d1"),
        occ("Brussels South", "location", "d2"),
        occ("Brussels Zuid", "location", "d3"),
    ]
    plain = Resolver(spelling=False).resolve(occurrences)
    assert not any(m.rule == "embedding" for m in plain.merges)

    def embed(labels: list[str]) -> list[list[float]]:
        return [[1.0, 0.0] if "Brussels" in label else [0.0, 1.0] for label in labels]

    with_model = Resolver(spelling=False, embed=embed).resolve(occurrences)
    assert any(m.rule == "embedding" and m.score == 1.0 for m in with_model.merges)


def test_the_canonical_name_is_the_most_frequent_full_form() -> None:
    r = Resolver().resolve(
        [
            occ("Apple Inc.", "organization", "d1"),
            occ("Apple", "organization", "d2"),
            occ("Apple", "organization", "d3"),
            occ("Apple Inc.", "organization", "d4"),
            occ("APPLE INC.", "organization", "d5"),
        ]
    )
    root = r.canonical[("apple", "organization")]
    assert root == ("apple inc.", "organization") and r.labels[root] == "Apple Inc."


def test_order_of_occurrences_does_not_change_the_result() -> None:
    occurrences = [
        occ("Swiss Federal Railways", "organization", "d1", 0),
        occ("SBB", "organization", "d1", 30),
        occ("Bernard Vann", "person", "d2", 0),
        occ("Vann", "person", "d2", 20),
        occ("阿里巴巴集团", "组织机构", "d3", 0),
        occ("阿里巴巴", "组织机构", "d4", 0),
        occ("apple", "", "d4", 5),
        occ("Apple", "organization", "d5", 0),
    ]
    first = Resolver().resolve(occurrences)
    shuffled = occurrences[:]
    random.Random(3).shuffle(shuffled)
    second = Resolver().resolve(shuffled)
    assert first.canonical == second.canonical and first.local == second.local
    assert [m.id for m in first.merges] == [m.id for m in second.merges]
