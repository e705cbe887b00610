"""The Asset Interfaces Description (IDTA 02017-1-0) of the station's own endpoints.

One interface per endpoint the configuration turns on: the Modbus register map (always: it is the
line), the status page and /metrics, the MQTT feed, the OPC UA server and this AAS API with its records.
"""

from __future__ import annotations

from collections.abc import Sequence

from basyx.aas import model

from edge.aas.elements import Element, collection, element_list, optional, prop, submodel
from edge.aas.identity import Identity
from edge.robotlink import registers as regs
from edge.station.config import LinesideConfig

AID_SUBMODEL = "https://admin-shell.io/idta/AssetInterfacesDescription/1/0/Submodel"
_AID = "https://admin-shell.io/idta/AssetInterfacesDescription/1/0/"
_TD = "https://www.w3.org/2019/wot/td#"
_HCTL = "https://www.w3.org/2019/wot/hypermedia#"
_SEC = "https://www.w3.org/2019/wot/security#"
_MODBUS = "https://www.w3.org/2019/wot/modbus#"
_MQTT = "https://www.w3.org/2019/wot/mqtt#"
_PROTOCOLS = {
    "http": "http://www.w3.org/2011/http",
    "modbus": "http://www.w3.org/2011/modbus",
    "mqtt": "http://www.w3.org/2011/mqtt",
    "opcua": "http://opcfoundation.org/UA/",
}
_ROBOT_OWNED = range(regs.ROBOT_FIRST, regs.ROBOT_FIRST + regs.ROBOT_COUNT)


def interfaces_submodel(config: LinesideConfig, identity: Identity) -> model.Submodel:
    sm_id = identity.submodel_id("AssetInterfacesDescription")
    interfaces = [
        _modbus(config, sm_id),
        _status(config, sm_id),
        _mqtt(config, sm_id),
        _opcua(config, sm_id),
        _aas_api(config, identity, sm_id),
    ]
    return submodel(
        sm_id,
        "AssetInterfacesDescription",
        AID_SUBMODEL,
        [i for i in interfaces if i is not None],
        version=("1", "0"),
        template_id="https://admin-shell.io/IDTA/02017/1/0",
    )


def _interface(  # noqa: PLR0917 (one interface's fields, in the template's order)
    submodel_id: str,
    id_short: str,
    protocol: str,
    title: str,
    base: str,
    content_type: str,
    properties: Sequence[Element],
    bearer: bool = False,
) -> model.SubmodelElementCollection:
    scheme = "bearer_sc" if bearer else "nosec_sc"
    definition = collection(
        scheme,
        _SEC + ("BearerSecurityScheme" if bearer else "NoSecurityScheme"),
        optional(
            prop("scheme", "bearer" if bearer else "nosec", _SEC + "SecurityScheme"),
            prop("in", "header", _SEC + "in") if bearer else None,
        ),
    )
    # `security` points at the scheme in securityDefinitions, as the template's example does.
    target = model.ModelReference(
        (
            model.Key(model.KeyTypes.SUBMODEL, submodel_id),
            model.Key(model.KeyTypes.SUBMODEL_ELEMENT_COLLECTION, id_short),
            model.Key(model.KeyTypes.SUBMODEL_ELEMENT_COLLECTION, "EndpointMetadata"),
            model.Key(model.KeyTypes.SUBMODEL_ELEMENT_COLLECTION, "securityDefinitions"),
            model.Key(model.KeyTypes.SUBMODEL_ELEMENT_COLLECTION, scheme),
        ),
        model.SubmodelElementCollection,
    )
    endpoint = collection(
        "EndpointMetadata",
        _AID + "EndpointMetadata",
        [
            prop("base", base, _TD + "baseURI", model.datatypes.AnyURI),
            prop("contentType", content_type, _HCTL + "forContentType"),
            element_list(
                "security",
                _TD + "hasSecurityConfiguration",
                [model.ReferenceElement(None, target)],
                model.ReferenceElement,
            ),
            collection("securityDefinitions", _TD + "definesSecurityScheme", [definition]),
        ],
    )
    interaction = collection(
        "InteractionMetadata",
        _AID + "InteractionMetadata",
        [collection("properties", _TD + "PropertyAffordance", properties)] if properties else [],
    )
    smc = collection(
        id_short,
        _AID + "Interface",
        [prop("title", title, _TD + "title"), endpoint, interaction],
    )
    smc.supplemental_semantic_id = [
        model.ExternalReference((model.Key(model.KeyTypes.GLOBAL_REFERENCE, _PROTOCOLS[protocol]),)),
        model.ExternalReference(
            (model.Key(model.KeyTypes.GLOBAL_REFERENCE, "https://www.w3.org/2019/wot/td"),)
        ),
    ]
    return smc


def _property(
    id_short: str, title: str, form: list[Element], value_type: str = "integer", observable: bool = False
) -> model.SubmodelElementCollection:
    return collection(
        id_short,
        "https://admin-shell.io/idta/AssetInterfaceDescription/1/0/PropertyDefinition",
        [
            prop("type", value_type, "https://www.w3.org/1999/02/22-rdf-syntax-ns#type"),
            prop("title", title, _TD + "title"),
            prop("observable", observable, _TD + "isObservable", model.datatypes.Boolean),
            collection("forms", _TD + "hasForm", form),
        ],
    )


def _modbus(config: LinesideConfig, sm_id: str) -> model.SubmodelElementCollection:
    link = config.robot_link
    host = link.robot_host if link.role == "client" and link.robot_host else link.host
    port = link.robot_port if link.role == "client" else link.port
    registers: list[Element] = []
    for offset, name in sorted(regs.REGISTER_NAMES.items()):
        writer = "robot writes" if offset in _ROBOT_OWNED else "lineside writes, read-only to the robot"
        form: list[Element] = [
            prop("href", f"/{link.unit_id}/{link.base + offset}?quantity=1", _HCTL + "hasTarget"),
            prop("modv_function", "readHoldingRegisters", _MODBUS + "hasFunction"),
            prop("modv_type", "xsd:unsignedShort", _MODBUS + "hasPayloadDataType"),
            prop(
                "modv_zeroBasedAddressing",
                True,
                _MODBUS + "hasZeroBasedAddressingFlag",
                model.datatypes.Boolean,
            ),
        ]
        registers.append(_property(name, f"{name} (offset {offset}; {writer}; docs/robot-link.md)", form))
    title = f"Robot link: lineside's Modbus TCP register map (role {link.role})"
    return _interface(
        sm_id,
        "RobotLinkModbus",
        "modbus",
        title,
        f"modbus+tcp://{host}:{port}",
        "application/octet-stream",
        registers,
    )


def _http_property(
    id_short: str, title: str, href: str, content_type: str
) -> model.SubmodelElementCollection:
    form: list[Element] = [
        prop("href", href, _HCTL + "hasTarget"),
        prop("contentType", content_type, _HCTL + "forContentType"),
        prop("htv_methodName", "GET", "https://www.w3.org/2011/http#methodName"),
    ]
    return _property(id_short, title, form, value_type="object")


def _status(config: LinesideConfig, sm_id: str) -> model.SubmodelElementCollection | None:
    status = config.status
    if not status.enabled:
        return None
    properties: list[Element] = [
        _http_property("page", "Live status page", "/", "text/html"),
        _http_property("status", "Station state as JSON", "/api/status", "application/json"),
        _http_property("metrics", "Prometheus metrics", "/metrics", "text/plain; version=0.0.4"),
    ]
    base = f"http://{status.bind}:{status.port}"
    return _interface(
        sm_id,
        "StatusHttp",
        "http",
        "Status page and Prometheus metrics",
        base,
        "application/json",
        properties,
        bearer=status.token_file is not None,  # scrapers' bearer token (browsers log in on the page)
    )


def _mqtt(config: LinesideConfig, sm_id: str) -> model.SubmodelElementCollection | None:
    fleet = config.fleet
    if not fleet.enabled:
        return None
    topic = f"{fleet.topic_prefix}/{config.station.name}"
    properties = []
    for name, suffix, retain in (("records", "records", False), ("status", "status", True)):
        form: list[Element] = [
            prop("href", f"{topic}/{suffix}", _HCTL + "hasTarget"),
            prop(
                "contentType",
                "application/json" if name == "records" else "text/plain",
                _HCTL + "forContentType",
            ),
            prop("mqv_controlPacket", "subscribe", _MQTT + "ControlPacket"),
            prop("mqv_qos", str(fleet.qos), _MQTT + "hasQoSFlag"),
            prop("mqv_retain", retain, _MQTT + "hasRetainFlag", model.datatypes.Boolean),
        ]
        title = "Every final inspection record" if name == "records" else "online / offline (retained)"
        properties.append(_property(name, title, form, value_type="object", observable=True))
    scheme = "mqtts" if fleet.tls is not None else "mqtt"
    base = f"{scheme}://{fleet.host}:{fleet.port}"
    return _interface(
        sm_id,
        "FleetMqtt",
        "mqtt",
        "Fleet feed on the plant's MQTT broker",
        base,
        "application/json",
        properties,
    )


def _opcua(config: LinesideConfig, sm_id: str) -> model.SubmodelElementCollection | None:
    # The OPC UA section is another engineer's (edge/opcua); read it defensively.
    opcua = getattr(config, "opcua", None)
    if opcua is None or not getattr(opcua, "enabled", False):
        return None
    endpoint_url = getattr(opcua, "endpoint_url", None)
    if callable(endpoint_url):
        base = str(endpoint_url())
    else:
        base = f"opc.tcp://{getattr(opcua, 'bind', '127.0.0.1')}:{getattr(opcua, 'port', 4840)}"
    title = "OPC UA server, Machine Vision companion specification (OPC 40100-1)"
    return _interface(sm_id, "OpcUa", "opcua", title, base, "application/opcua", [])


def _aas_api(
    config: LinesideConfig, identity: Identity, sm_id: str
) -> model.SubmodelElementCollection | None:
    aas = config.aas
    if not aas.enabled:
        return None
    properties: list[Element] = [
        _http_property(
            "shells", "Asset Administration Shells (AAS API, read only)", "/shells", "application/json"
        ),
        _http_property("submodels", "Submodels with current values", "/submodels", "application/json"),
        _http_property(
            "records", "Inspection records as JSON (?since=&limit=)", "/records", "application/json"
        ),
    ]
    return _interface(
        sm_id,
        "AasApi",
        "http",
        "This shell, served live (AAS Part 2 read subset)",
        identity.public_url,
        "application/json",
        properties,
        bearer=aas.token_file is not None,
    )
