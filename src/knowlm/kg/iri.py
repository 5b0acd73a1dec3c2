"""The one IRI scheme of every RDF output (the graph store and ``knowlm extract --format nt``), and the name
normalisation that identifies entities. A leaf module: no store, no optional dependency."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any
from urllib.parse import quote

KG = "https://knowlm.org/kg/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
XSD = "http://www.w3.org/2001/XMLSchema#"
REL = KG + "relation/"
ROLE = KG + "role/"
PREFIXES = {"kg": KG, "rel": REL, "role": ROLE, "rdf": RDF, "rdfs": RDFS, "xsd": XSD}


def normalise(name: str) -> str:
    """The form entities are deduplicated by: Unicode NFKC (full-width -> ASCII), whitespace collapsed, and case
    folded (scripts without case, such as Chinese, are unchanged)."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", name)).strip().casefold()


def digest(*parts: Any) -> str:
    """A short stable hash of ``parts`` (the last segment of the store's IRIs)."""
    return hashlib.sha1("\x1f".join(map(str, parts)).encode("utf-8")).hexdigest()[:20]


def entity_iri(name: str, type_: str | None) -> str:
    """An entity named ``name`` of type ``type_`` (None or "" when untyped): the same IRI wherever it is written."""
    return f"{KG}entity/{digest(normalise(name), normalise(type_ or ''))}"


def _local(name: str) -> str:
    """A name as the readable last part of an IRI: normalised, spaces as ``_``, only the characters IRIs
    forbid percent-encoded (so a query can say ``rel:founder`` or ``rel:创始人``)."""
    return "".join(
        c if c.isprintable() and c not in '<>"{}|\\^`%/?#' else quote(c, safe="")
        for c in normalise(name).replace(" ", "_")
    )


def relation_iri(relation: str) -> str:
    return REL + _local(relation)


def role_iri(role: str) -> str:
    return ROLE + _local(role)
