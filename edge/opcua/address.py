"""The station's address space on OPC 40100-1 types: a VisionSystem with its state machine, the recipes
and the recent results, and the ResultReady event of each finalised part.

The Machine Vision types come from the OPC Foundation's own NodeSet (vendored beside this module, MIT
licence in its header). Instances live in the station's namespace (`urn:lineside:<station>`) under
string NodeIds that never change (`VisionSystem`, `VisionSystem.ResultManagement.Results`, ...).
Every node is read-only to clients and every Machine Vision method that would control the system
answers Bad_NotSupported: this server observes the line, the Modbus link controls it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from asyncua import Node, Server, ua
from asyncua.common.instantiate_util import instantiate

from edge.opcua.results import PartResult
from edge.opcua.state import VisionState
from edge.station.config import LinesideConfig

log = logging.getLogger(__name__)

MV_NAMESPACE = "http://opcfoundation.org/UA/MachineVision"
NODESET = Path(__file__).with_name("Opc.Ua.MachineVision.NodeSet2.xml")

# NodeIds in the Machine Vision namespace (the NodeSet's NodeIds.csv).
VISION_SYSTEM_TYPE = 1003
RECIPE_MANAGEMENT_TYPE = 1004
RESULT_MANAGEMENT_TYPE = 1007
RECIPE_FOLDER_TYPE = 1008
RESULT_FOLDER_TYPE = 1016
RECIPE_TYPE = 1002
RESULT_READY_EVENT_TYPE = 1024
RESULT_TYPE = 2002
# The states of VisionStateMachineType, for CurrentState/Id.
STATE_NODES = {
    VisionState.PREOPERATIONAL: 5028,
    VisionState.HALTED: 5029,
    VisionState.ERROR: 5030,
    VisionState.OPERATIONAL: 5031,
}
# Subtypes of BinaryIdBaseDataType that add no field: asyncua maps them all to the base class, which would
# send every one with the base's encoding. (DataType, its DefaultBinary encoding) so each goes as itself.
ID_SUBTYPES = {
    "RecipeIdExternalDataType": (3002, 5002),
    "ConfigurationIdDataType": (3008, 5090),
    "RecipeIdInternalDataType": (3013, 5268),
}


def own_namespace(station: str) -> str:
    return f"urn:lineside:{station}"


async def _refuse(parent: ua.NodeId, *args: Any) -> ua.StatusCode:
    """Every control method (Halt, Reset, PrepareRecipe, ...): refused, the line is never steered here."""
    return ua.StatusCode(ua.StatusCodes.BadNotSupported)


@dataclass
class AddressSpace:
    """The nodes the server updates, and the events it sends."""

    server: Server
    mv: int
    ns: int
    vision_system: Node
    current_state: Node
    current_state_id: Node
    recipes: dict[int, Node]
    results: Node
    generators: list[Any]
    kept: int
    configuration_id: str
    id_types: dict[str, type]
    kept_results: OrderedDict[str, tuple[Node, dict[str, ua.Variant]]] = field(default_factory=OrderedDict)
    handles: int = 0
    state: VisionState | None = None

    async def set_state(self, state: VisionState) -> None:
        if state is self.state:
            return
        self.state = state
        await self.current_state.write_value(ua.LocalizedText(state.value, "en"))
        await self.current_state_id.write_value(ua.NodeId(STATE_NODES[state], self.mv))
        log.info("opcua: VisionStateMachine is %s", state.value)

    async def add_result(self, part: PartResult) -> None:
        """Keep the result (the oldest beyond `kept` goes), mark its recipe prepared, send ResultReady."""
        fields = result_fields(part, self.configuration_id, self.id_types)
        node = await self._result_node(part, fields)
        self.kept_results[part.result_id] = (node, fields)
        while len(self.kept_results) > self.kept:
            _, (oldest, _fields) = self.kept_results.popitem(last=False)
            await self.server.delete_nodes([oldest], recursive=True)
        for number, recipe in self.recipes.items():
            prepared = await recipe.get_child(f"{self.mv}:IsPrepared")
            await prepared.write_value(number == part.recipe_number)
        for generator in self.generators:
            for name, value in fields.items():
                setattr(generator.event, name, value.Value)
                generator.event.data_types[name] = value.VariantType
            await generator.trigger(time_attr=part.creation_time, message=part.message())

    async def get_result_by_id(self, parent: ua.NodeId, *args: ua.Variant) -> list[ua.Variant]:
        """ResultManagement.GetResultById (OPC 40100-1, 7.10.2.1), over the kept results.

        Error 0 and the result when it is kept; else Error -1 (application-specific: not, or no longer,
        among the last `results_kept`) with an empty result whose ResultState is 0 (Undefined).
        """
        result_id = str(getattr(args[0].Value, "Id", "")) if args else ""
        kept = self.kept_results.get(result_id)
        if kept is None:
            result, error = ua.ResultDataType(ResultId=ua.ResultIdDataType(Id=result_id), ResultState=0), -1
        else:
            result, error = result_data(kept[1]), 0
        self.handles = (self.handles + 1) % 2**32  # no handle to release: ReleaseResultHandle is not offered
        return [
            ua.Variant(self.handles, ua.VariantType.UInt32),
            ua.Variant(result, ua.VariantType.ExtensionObject),
            ua.Variant(error, ua.VariantType.Int32),
        ]

    async def _result_node(self, part: PartResult, fields: dict[str, ua.Variant]) -> Node:
        nodeid = ua.NodeId(f"VisionSystem.ResultManagement.Results.{part.result_id}", self.ns)
        result_type = self.server.get_node(ua.NodeId(RESULT_TYPE, self.mv))
        bname = ua.QualifiedName(f"Result_{part.result_id}", self.ns)
        dname = ua.LocalizedText(bname.Name)
        nodes = await instantiate(self.results, result_type, nodeid, bname, dname, instantiate_optional=True)
        node = nodes[0]
        await node.write_value(ua.Variant(result_data(fields), ua.VariantType.ExtensionObject))
        unused = []
        for child in await node.get_children():
            name = (await child.read_browse_name()).Name
            if name in fields:
                if name == "ResultContent":  # the NodeSet leaves its DataType out: BaseDataType by default
                    await child.write_attribute(
                        ua.AttributeIds.DataType,
                        ua.DataValue(ua.Variant(ua.NodeId(ua.ObjectIds.BaseDataType))),
                    )
                await child.write_value(fields[name])
            else:  # optional and nothing to say (MeasId, ProductId, ...): absent rather than empty
                unused.append(child)
        await self.server.delete_nodes(unused, recursive=True)
        return node


def result_fields(
    part: PartResult, configuration_id: str, id_types: dict[str, type]
) -> dict[str, ua.Variant]:
    """The ResultDataType fields (and ResultReadyEventType properties) of one part, typed: an event's
    properties have no value to take a type from, so each field says its own."""
    times = ua.ProcessingTimesDataType(StartTime=part.start_time, EndTime=part.end_time)
    if part.acquisition_ms is not None:
        times.AcquisitionDuration = part.acquisition_ms
    if part.processing_ms is not None:
        times.ProcessingDuration = part.processing_ms
    recipe = id_types["RecipeIdInternalDataType"](Id=str(part.recipe_number))
    if part.recipe_name:
        recipe.Description = ua.LocalizedText(part.recipe_name, "en")
    ext, vt = ua.VariantType.ExtensionObject, ua.VariantType
    return {
        "ResultId": ua.Variant(ua.ResultIdDataType(Id=part.result_id), ext),
        "IsPartial": ua.Variant(False, vt.Boolean),
        "IsSimulated": ua.Variant(False, vt.Boolean),
        "ResultState": ua.Variant(part.result_state, vt.Int32),
        "PartId": ua.Variant(ua.PartIdDataType(Id=part.part_id), ext),
        "InternalRecipeId": ua.Variant(recipe, ext),
        "ExternalRecipeId": ua.Variant(
            id_types["RecipeIdExternalDataType"](Id=part.recipe_name or str(part.recipe_number)), ext
        ),
        "InternalConfigurationId": ua.Variant(id_types["ConfigurationIdDataType"](Id=configuration_id), ext),
        "JobId": ua.Variant(ua.JobIdDataType(Id=part.job_id), ext),
        "CreationTime": ua.Variant(part.creation_time, vt.DateTime),
        "ProcessingTimes": ua.Variant(times, ext),
        # BaseDataType[]: one String, the content as JSON (verdict, reasons, classes, scores, ...).
        "ResultContent": ua.Variant([ua.Variant(part.content, vt.String)], vt.Variant),
    }


def result_data(fields: dict[str, ua.Variant]) -> Any:
    """The ResultType variable's own value: the whole ResultDataType."""
    data = ua.ResultDataType()
    for name, value in fields.items():
        setattr(data, name, value.Value)
    return data


async def build(server: Server, config: LinesideConfig, configuration_id: str) -> AddressSpace:
    """Import the Machine Vision types and create the station's VisionSystem."""
    await server.import_xml(str(NODESET))
    mv = await server.get_namespace_index(MV_NAMESPACE)
    id_types = _register_id_subtypes(mv)
    ns = await server.register_namespace(own_namespace(config.station.name))
    objects = server.nodes.objects
    vision = await _add_typed(
        objects, ua.NodeId("VisionSystem", ns), (config.station.name, ns), VISION_SYSTEM_TYPE, mv
    )
    machine = await vision.get_child(f"{mv}:VisionStateMachine")
    current = await machine.get_child("0:CurrentState")
    current_id = await current.get_child("0:Id")
    recipes = await _recipes(server, vision, mv, ns, config, id_types=id_types)
    management = await _add_typed(
        vision,
        ua.NodeId("VisionSystem.ResultManagement", ns),
        ("ResultManagement", mv),
        RESULT_MANAGEMENT_TYPE,
        mv,
    )
    results = await _add_typed(
        management,
        ua.NodeId("VisionSystem.ResultManagement.Results", ns),
        ("Results", mv),
        RESULT_FOLDER_TYPE,
        mv,
    )
    await _refuse_control(server, vision)
    generators = await _generators(server, vision, mv)
    space = AddressSpace(
        server,
        mv,
        ns,
        vision,
        current,
        current_id,
        recipes,
        results,
        generators,
        config.opcua.results_kept,
        configuration_id,
        id_types,
    )
    server.link_method(await management.get_child(f"{mv}:GetResultById"), space.get_result_by_id)
    await space.set_state(VisionState.PREOPERATIONAL)
    return space


async def _add_typed(
    parent: Node, node_id: ua.NodeId, browse: tuple[str, int], type_id: int, mv: int
) -> Node:
    """An object of a Machine Vision type, without its optional children (added where served)."""
    name, name_ns = browse
    return await parent.add_object(
        node_id,
        ua.QualifiedName(name, name_ns),
        objecttype=ua.NodeId(type_id, mv),
        instantiate_optional=False,
    )


def _register_id_subtypes(mv: int) -> dict[str, type]:
    classes: dict[str, type] = {}
    for name, (datatype, encoding) in ID_SUBTYPES.items():
        classes[name] = type(name, (ua.BinaryIdBaseDataType,), {})
        ua.register_extension_object(name, ua.NodeId(encoding, mv), classes[name], ua.NodeId(datatype, mv))
    return classes


async def _recipes(
    server: Server, vision: Node, mv: int, ns: int, config: LinesideConfig, *, id_types: dict[str, type]
) -> dict[int, Node]:
    """RecipeManagement/Recipes: one RecipeType object per configured recipe, read only."""
    management = await _add_typed(
        vision,
        ua.NodeId("VisionSystem.RecipeManagement", ns),
        ("RecipeManagement", mv),
        RECIPE_MANAGEMENT_TYPE,
        mv,
    )
    folder = await _add_typed(
        management,
        ua.NodeId("VisionSystem.RecipeManagement.Recipes", ns),
        ("Recipes", mv),
        RECIPE_FOLDER_TYPE,
        mv,
    )
    now = datetime.now(timezone.utc)
    nodes: dict[int, Node] = {}
    for recipe in config.recipes:
        node = await _add_typed(
            folder,
            ua.NodeId(f"VisionSystem.RecipeManagement.Recipes.{recipe.number}", ns),
            (f"Recipe_{recipe.number}", ns),
            RECIPE_TYPE,
            mv,
        )
        await node.write_attribute(
            ua.AttributeIds.DisplayName, ua.DataValue(ua.Variant(ua.LocalizedText(recipe.name, "en")))
        )
        internal = id_types["RecipeIdInternalDataType"](Id=str(recipe.number))
        internal.Description = ua.LocalizedText(recipe.name, "en")
        await (await node.get_child(f"{mv}:InternalId")).write_value(
            ua.Variant(internal, ua.VariantType.ExtensionObject)
        )
        await (await node.get_child(f"{mv}:LastModified")).write_value(now)
        prepared = recipe.number == config.default_recipe
        await (await node.get_child(f"{mv}:IsPrepared")).write_value(prepared)
        nodes[recipe.number] = node
    return nodes


async def _refuse_control(server: Server, vision: Node) -> None:
    """Link every method below the VisionSystem to the refusal (an unlinked one would look callable)."""
    pending, seen = [vision], {vision.nodeid}
    while pending:
        node = pending.pop()
        for child in await node.get_children():
            if child.nodeid in seen:
                continue
            seen.add(child.nodeid)
            if await child.read_node_class() == ua.NodeClass.Method:
                server.link_method(child, _refuse)
            else:
                pending.append(child)


async def _generators(server: Server, vision: Node, mv: int) -> list[Any]:
    """ResultReady from the VisionSystem, and the same event at the Server object (UaExpert's default)."""
    event_type = server.get_node(ua.NodeId(RESULT_READY_EVENT_TYPE, mv))
    own = await server.get_event_generator(event_type, vision)
    at_server = await server.get_event_generator(event_type, ua.ObjectIds.Server)
    at_server.event.SourceNode = vision.nodeid
    at_server.event.SourceName = own.event.SourceName
    await server.nodes.server.add_reference(vision.nodeid, ua.ObjectIds.HasNotifier)
    return [own, at_server]
