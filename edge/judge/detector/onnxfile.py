"""Checks on the raw ONNX bytes that need no `onnx` package (the appliance does not install it).

A model must be one self-contained file: data stored beside it would escape the card's sha256.
"""

from __future__ import annotations

from typing import Final

# Message kinds of the ONNX protobuf that can hold tensors, and for each the field numbers (from onnx.proto)
# of the sub-messages to descend into. Everything else is skipped by its length.
_MODEL, _TRAINING, _GRAPH, _NODE, _ATTRIBUTE, _FUNCTION, _SPARSE, _TENSOR = range(8)
_CHILDREN: Final[dict[int, dict[int, int]]] = {
    _MODEL: {7: _GRAPH, 20: _TRAINING, 25: _FUNCTION},
    _TRAINING: {1: _GRAPH, 2: _GRAPH},
    _GRAPH: {1: _NODE, 5: _TENSOR, 15: _SPARSE},
    _NODE: {5: _ATTRIBUTE},
    _ATTRIBUTE: {5: _TENSOR, 6: _GRAPH, 10: _TENSOR, 11: _GRAPH, 22: _SPARSE, 23: _SPARSE},
    _FUNCTION: {7: _NODE, 11: _ATTRIBUTE},
    _SPARSE: {1: _TENSOR, 2: _TENSOR},
    _TENSOR: {},
}
_TENSOR_EXTERNAL_DATA: Final = 13  # TensorProto.external_data (repeated key/value entries)
_TENSOR_DATA_LOCATION: Final = 14  # TensorProto.data_location; 1 means EXTERNAL
_WIRE_VARINT, _WIRE_FIXED64, _WIRE_LENGTH, _WIRE_FIXED32 = 0, 1, 2, 5


class MalformedOnnxError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def references_external_data(model: bytes) -> bool:
    """True when any tensor in the model (graphs, subgraphs, functions) keeps its data in another file."""
    stack = [(_MODEL, 0, len(model))]
    while stack:
        kind, pos, end = stack.pop()
        while pos < end:
            key, pos = _varint(model, pos)
            field, wire = key >> 3, key & 7
            if wire == _WIRE_VARINT:
                value, pos = _varint(model, pos)
                if kind == _TENSOR and field == _TENSOR_DATA_LOCATION and value == 1:
                    return True
            elif wire == _WIRE_LENGTH:
                length, pos = _varint(model, pos)
                if kind == _TENSOR and field == _TENSOR_EXTERNAL_DATA:
                    return True
                child = _CHILDREN[kind].get(field)
                if child is not None:
                    stack.append((child, pos, pos + length))
                pos += length
            elif wire == _WIRE_FIXED64:
                pos += 8
            elif wire == _WIRE_FIXED32:
                pos += 4
            else:
                raise MalformedOnnxError(f"unsupported protobuf wire type {wire} at byte {pos}")
            if pos > end:
                raise MalformedOnnxError(f"protobuf field runs past its message end at byte {pos}")
    return False


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 70, 7):
        if pos >= len(data):
            raise MalformedOnnxError("protobuf varint runs past the end of the file")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise MalformedOnnxError(f"protobuf varint longer than 10 bytes at byte {pos}")
