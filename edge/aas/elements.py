"""Small builders of BaSyx submodel elements, each with the semanticId that says what it means.

The submodel modules read as their IDTA templates do (an element per line); these keep the BaSyx
constructor noise out of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from basyx.aas import model

# Our own concepts (no IDTA template names them) live under one URN namespace, versioned like IDTA's.
LINESIDE_SEMANTICS = "urn:lineside:semantics:1:0:"

Element = model.SubmodelElement


def ref(iri: str) -> model.ExternalReference:
    """An external (global) reference to a concept: an IRI, IRDI or URN."""
    return model.ExternalReference((model.Key(model.KeyTypes.GLOBAL_REFERENCE, iri),))


def own(concept: str) -> str:
    """The semanticId of a lineside concept that no IDTA template defines."""
    return LINESIDE_SEMANTICS + concept


def prop(
    id_short: str | None,
    value: Any,
    semantic: str,
    value_type: type = model.datatypes.String,
) -> model.Property:
    return model.Property(id_short, value_type, value, semantic_id=ref(semantic))


def text(id_short: str, value: str, semantic: str, lang: str = "en") -> model.MultiLanguageProperty:
    """A MultiLanguageProperty with one language (the nameplate's texts)."""
    return model.MultiLanguageProperty(
        id_short, model.MultiLanguageTextType({lang: value}), semantic_id=ref(semantic)
    )


def collection(
    id_short: str | None, semantic: str, elements: Iterable[Element]
) -> model.SubmodelElementCollection:
    return model.SubmodelElementCollection(id_short, list(elements), semantic_id=ref(semantic))


def element_list(  # noqa: PLR0917 (reads like the template's columns)
    id_short: str,
    semantic: str,
    items: Iterable[Element],
    item_type: type[Element],
    item_semantic: str | None = None,
    value_type: type | None = None,
) -> model.SubmodelElementList[Any]:
    """A SubmodelElementList; its items carry no idShort (AAS constraint AASd-120)."""
    return model.SubmodelElementList(
        id_short,
        item_type,
        list(items),
        semantic_id_list_element=None if item_semantic is None else ref(item_semantic),
        value_type_list_element=value_type,
        semantic_id=ref(semantic),
    )


def submodel(  # noqa: PLR0917 (reads like the template's columns)
    submodel_id: str,
    id_short: str,
    semantic: str,
    elements: Iterable[Element],
    version: tuple[str, str] | None = None,
    template_id: str | None = None,
) -> model.Submodel:
    """An instance submodel; `version` (version, revision) and `template_id` name the IDTA template."""
    administration = None
    if version is not None or template_id is not None:
        administration = model.AdministrativeInformation(
            version=None if version is None else version[0],
            revision=None if version is None else version[1],
            template_id=template_id,
        )
    return model.Submodel(
        submodel_id,
        list(elements),
        id_short=id_short,
        semantic_id=ref(semantic),
        administration=administration,
        kind=model.ModellingKind.INSTANCE,
    )


def optional(*elements: Element | None) -> list[Element]:
    """The elements that are present: optional template elements are left out, never empty."""
    return [e for e in elements if e is not None]
