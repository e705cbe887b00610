"""The station's AAS Environment: one shell for the station and its submodels, built with BaSyx.

The static submodels (nameplate, technical data, AI models, interfaces) come from the config and the
model cards; the results submodels from a snapshot of the records, so the export and the live API
show the same structure.
"""

from __future__ import annotations

from basyx.aas import model

from edge.aas.aimodels import model_submodels
from edge.aas.counts import ResultsSnapshot
from edge.aas.identity import Identity, station_identity
from edge.aas.interfaces import interfaces_submodel
from edge.aas.nameplate import nameplate_submodel, technical_data_submodel
from edge.aas.results import results_submodel, time_series_submodel
from edge.station.config import LinesideConfig

Store = model.DictIdentifiableStore[model.Identifiable]
SERIAL_NUMBER_KEY = "serialNumber"  # the specificAssetId name IDTA's examples use


def static_submodels(config: LinesideConfig, identity: Identity) -> list[model.Submodel]:
    """What changes only with the config or a model: raises LinesideError naming the field at fault."""
    return [
        nameplate_submodel(config.aas, identity),
        technical_data_submodel(config, identity),
        *model_submodels(config, identity),
        interfaces_submodel(config, identity),
    ]


def result_submodels(snapshot: ResultsSnapshot, identity: Identity) -> list[model.Submodel]:
    return [results_submodel(snapshot, identity), time_series_submodel(snapshot, identity)]


def station_shell(identity: Identity, submodels: list[model.Submodel]) -> model.AssetAdministrationShell:
    asset = model.AssetInformation(
        model.AssetKind.INSTANCE,
        global_asset_id=identity.asset_id,
        specific_asset_id=[model.SpecificAssetId(SERIAL_NUMBER_KEY, identity.serial_number)],
    )
    shell = model.AssetAdministrationShell(
        asset,
        identity.shell_id,
        id_short="LinesideStation",
        submodel={model.ModelReference.from_referable(sm) for sm in submodels},
    )
    shell.description = model.MultiLanguageTextType({"en": f"lineside inspection station {identity.station}"})
    return shell


def build_environment(config: LinesideConfig, snapshot: ResultsSnapshot) -> Store:
    """The whole environment: the shell first, then its submodels."""
    identity = station_identity(config.aas, config.station.name)
    submodels = [*static_submodels(config, identity), *result_submodels(snapshot, identity)]
    store: Store = model.DictIdentifiableStore()
    store.add(station_shell(identity, submodels))
    for sm in submodels:
        store.add(sm)
    return store
