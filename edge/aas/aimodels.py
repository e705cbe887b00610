"""One AI Model Nameplate submodel (IDTA 02060-1-0) per model the station's recipes use, from its card.

The template's mandatory elements are filled from the model card; what the card holds beyond them
(sha256, kind, classes, thresholds, the training data fingerprint, every metric) is in a `ModelCard`
collection with lineside semanticIds, because IDTA 02060 has no place for it.
"""

from __future__ import annotations

import json
from pathlib import Path

from basyx.aas import model

from edge.aas.elements import Element, collection, optional, own, prop, ref, submodel, text
from edge.aas.identity import Identity
from edge.errors import LinesideError
from edge.modelstore.card import ModelCard, read_card
from edge.station.config import LinesideConfig

AI_MODEL_NAMEPLATE = "https://admin-shell.io/idta/SubmodelTemplate/AIModelNameplate/1/0"
_T = "https://admin-shell.io/idta/AIModelNameplate/"
_KIND = {
    "detect": "object detection: defect boxes with class and confidence",
    "classify": "image classification: part good or defective, with a class activation map",
    "anomaly": "anomaly detection learnt from good parts only: score and anomaly map",
}
_LEARNING = {"detect": "supervised", "classify": "supervised", "anomaly": "unsupervised (good parts only)"}


def models_in_use(config: LinesideConfig) -> list[tuple[str, Path]]:
    """(where in the config, model folder) for every judge of every recipe, each model folder once."""
    seen: set[Path] = set()
    found: list[tuple[str, Path]] = []
    for index, recipe in enumerate(config.recipes):
        judges = [(f"recipes.{index}.model", recipe.model)]
        judges += [(f"recipes.{index}.stages.{i}.model", s.model) for i, s in enumerate(recipe.stages)]
        for where, folder in judges:
            if folder not in seen:
                seen.add(folder)
                found.append((where, folder))
    return found


def model_submodels(config: LinesideConfig, identity: Identity) -> list[model.Submodel]:
    """A submodel per distinct model (name, version); a missing or bad card names the config field."""
    submodels: dict[str, model.Submodel] = {}
    for where, folder in models_in_use(config):
        try:
            card = read_card(folder)
        except LinesideError as exc:
            raise LinesideError(f"{where}: {exc}") from None
        id_short = model_id_short(card)
        if id_short not in submodels:
            submodels[id_short] = _model_submodel(card, folder, identity, id_short)
    return list(submodels.values())


def model_id_short(card: ModelCard) -> str:
    """An idShort from the card's name and version (AAS 3.0 idShorts allow letters, digits and '_')."""
    safe = "".join(c if c.isascii() and c.isalnum() else "_" for c in f"{card.name}_{card.version}")
    return f"AIModel_{safe}"


def _model_submodel(card: ModelCard, folder: Path, identity: Identity, id_short: str) -> model.Submodel:
    nameplate = identity.submodel_id("Nameplate")
    contact = model.ModelReference(
        (
            model.Key(model.KeyTypes.SUBMODEL, nameplate),
            model.Key(model.KeyTypes.SUBMODEL_ELEMENT_COLLECTION, "AddressInformation"),
        ),
        model.SubmodelElementCollection,
    )
    elements: list[Element] = [
        prop(
            "URIOfTheProduct", f"urn:lineside:model:{card.name}:{card.version}", "0112/2///61987#ABN590#002"
        ),
        prop("Version", card.version, "0173-1#02-AAS354#002"),
        model.ReferenceElement("ContactInformation", contact, semantic_id=_ref("Contactinformation/1/0")),
        prop("Storage", f"{folder.parent.name}/{folder.name}/{card.file}", _T + "Storage/1/0"),
        text("KindOfLearning", _LEARNING[card.task], _T + "KindOfLearning/1/0"),
        _inputs(card),
        _outputs(card),
        collection("TrainingResults", _T + "TrainingResults/1/0", _metrics(card.metrics)),
        collection(
            "Details",
            _T + "Details/1/0",
            [
                prop("FileExtension", Path(card.file).suffix or ".onnx", _T + "Details/DataEnding/1/0"),
                prop("AIFramework", "ONNX (onnxruntime)", _T + "Details/AIFramework/1/0"),
                prop("ProgramLanguage", "Python", _T + "Details/ProgramLanguage/1/0"),
            ],
        ),
        _type_specific(card),
        _card_section(card),
    ]
    return submodel(
        identity.submodel_id(id_short),
        id_short,
        AI_MODEL_NAMEPLATE,
        elements,
        version=("1", "0"),
        template_id="https://admin-shell.io/IDTA/02060/1/0",
    )


def _ref(path: str) -> model.ExternalReference:
    return ref(_T + path)


def _inputs(card: ModelCard) -> model.SubmodelElementCollection:
    size = f"1x3x{card.input.height}x{card.input.width}"
    dimension = collection(
        "Dimension1",
        _T + "Inputs/DimensionN/1/0",
        [
            prop("Size", size, _T + "Inputs/DimensionN/Size/1/0"),
            prop(
                "Information",
                f"{card.input.color} {card.input.dtype}, pixel x {card.input.scale:.8g}, "
                f"letterbox {card.input.pad_value}",
                _T + "Inputs/DimensionN/Information/1/0",
            ),
        ],
    )
    return collection(
        "Inputs", _T + "Inputs/1/0", [prop("KindOfInput", "image", _T + "Inputs/KindOfInput/1/0"), dimension]
    )


def _outputs(card: ModelCard) -> model.SubmodelElementCollection:
    size = {
        "yolov8": f"1x{4 + len(card.classes)}xN",
        "class_map": f"1x{len(card.classes)}",
        "anomaly_map": "1",
    }
    dimension = collection(
        "Dimension1",
        _T + "Outputs/DimensionN/1/0",
        [
            prop("Size", size[card.output.layout], _T + "Outputs/DimensionN/Size/1/0"),
            text(
                "Result",
                f"{card.output.layout}: {', '.join(card.classes)}",
                _T + "Outputs/DimensionN/Result/1/0",
            ),
        ],
    )
    return collection("Outputs", _T + "Outputs/1/0", [dimension])


def _metrics(metrics: dict[str, object]) -> list[Element]:
    """Each metric as a property: whole numbers as xs:long, other numbers as xs:double, text as it is,
    anything else (per class dicts) as JSON text."""
    elements: list[Element] = []
    for name, value in metrics.items():
        id_short = _safe(name)
        semantic = own(f"Model/Metric/{id_short}")
        if isinstance(value, int) and not isinstance(value, bool):
            elements.append(prop(id_short, value, semantic, model.datatypes.Long))
        elif isinstance(value, float):
            elements.append(prop(id_short, value, semantic, model.datatypes.Double))
        else:
            elements.append(prop(id_short, value if isinstance(value, str) else json.dumps(value), semantic))
    return elements


def _type_specific(card: ModelCard) -> model.SubmodelElementCollection:
    t = _T + "AITypeSpecificInformation/"
    backbone = card.backbone
    transfer = (
        None
        if backbone is None
        else collection(
            "TransferLearning",
            t + "TransferLearning/1/0",
            [
                prop(
                    "Name",
                    f"{backbone.name} ({backbone.weights_package})",
                    t + "NeuralNetwork/TransferLearning/Name/1/0",
                )
            ],
        )
    )
    args = card.training.args
    hyper = collection(
        "Hyperparameter",
        t + "Hyperparameter/1/0",
        [
            prop(
                _safe(k), v if isinstance(v, str) else json.dumps(v), own(f"Model/Hyperparameter/{_safe(k)}")
            )
            for k, v in args.items()
        ],
    )
    return collection(
        "AITypeSpecificInformation",
        t + "1/0",
        optional(transfer, hyper if args else None, text("Type", _KIND[card.task], t + "Type/1/0")),
    )


def _card_section(card: ModelCard) -> model.SubmodelElementCollection:
    """What only the card knows: the proof of the file, the kind, classes, thresholds and provenance."""
    thresholds = card.thresholds.model_dump(mode="json", exclude_none=True)
    licence = card.backbone.licence if card.backbone is not None else "not stated on the model card"
    return collection(
        "ModelCard",
        own("Model/Card"),
        [
            prop("Name", card.name, own("Model/Name")),
            prop("Sha256", card.sha256, own("Model/Sha256")),
            prop("Kind", card.task, own("Model/Kind")),
            prop("Classes", ",".join(card.classes), own("Model/Classes")),
            prop("Thresholds", json.dumps(thresholds, sort_keys=True), own("Model/Thresholds")),
            prop("Precision", card.precision, own("Model/Precision")),
            prop(
                "TrainingDataFingerprint",
                card.training.data_fingerprint,
                own("Model/TrainingDataFingerprint"),
            ),
            prop("TrainingData", card.training.dataset or "not stated", own("Model/TrainingData")),
            prop("CodeVersion", card.training.code_version, own("Model/CodeVersion")),
            prop("Licence", licence, own("Model/Licence")),
        ],
    )


def _safe(name: str) -> str:
    safe = "".join(c if c.isascii() and c.isalnum() else "_" for c in name)
    return safe if safe[:1].isalpha() else f"p_{safe}"
