"""`lineside bench --stage`: each judge against its own floor, the chain against the sum of the floors, end to
end over Modbus through a real appliance, and an anomaly model's bank search share from onnxruntime's profile.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge.bench.stages import search_share, share_of_profile
from edge.judge.inspector import Inspector, load_model
from edge.judge.mapstage import MapStage
from edge.station.config import RecipeConfig
from tests.line import lineside
from tests.mapmodels import dark_part, make_map_model
from tests.models import IR_VERSION, OPSET, ModelBox, make_yolo_model


def test_bench_measures_each_stage_and_the_chain_through_the_real_appliance(tmp_path: Path) -> None:
    detector = make_yolo_model(
        tmp_path / "d", ["scratch"], [ModelBox(32, 32, 10, 10, 0, 1.0)], imgsz=(64, 64)
    )
    classifier = make_map_model(tmp_path / "c", "classify")
    anomaly = make_map_model(tmp_path / "a", "anomaly")
    # A stage named relative to where the command runs, as a user types it: the appliance the bench starts
    # (its station file elsewhere) must load the same folder.
    args = ["--model", str(detector), "--stage", classifier.name, "--stage", str(anomaly), "--parts", "8"]
    args += ["--iterations", "10", "--seconds", "1", "--frame", "160x120"]
    proc = lineside("bench", *args, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for row in (
        "stage detector (detect): floor",
        "stage classifier alone: pre-process, run, verdict",
        "stage anomaly (anomaly): floor",
        "chain in process, every stage (sum of floors",
        "chain end-to-end over Modbus (above), over the sum of floors",
    ):
        assert row in out, out


def _profiled_model(path: Path) -> Path:
    """A graph whose 'backbone' is a big matrix product and whose 'bank search' is a small one."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.random((192, 192), dtype=np.float32), "backbone_w"),
        numpy_helper.from_array(rng.random((192, 8), dtype=np.float32), "bank_0"),
    ]
    nodes = [
        helper.make_node("Reshape", ["images", "shape"], ["flat"], name="backbone_reshape"),
        helper.make_node("MatMul", ["flat", "backbone_w"], ["features"], name="backbone_matmul"),
        helper.make_node("MatMul", ["features", "bank_0"], ["distances"], name="bank_search_matmul"),
        helper.make_node(
            "ReduceMin", ["distances"], ["score"], keepdims=0, axes=[0, 1], name="bank_search_min"
        ),
    ]
    inits.append(numpy_helper.from_array(np.array([64, 192], np.int64), "shape"))
    graph = helper.make_graph(
        nodes,
        "profiled",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.save(model, str(path))
    return path


def test_search_share_comes_from_the_profile_of_the_named_search_nodes(tmp_path: Path) -> None:
    anomaly = make_map_model(tmp_path / "a", "anomaly")
    stage = Inspector.load(RecipeConfig(number=1, name="a", model=anomaly), load_model(anomaly)).stages[0]
    assert isinstance(stage, MapStage)
    assert search_share(anomaly / "model.onnx", dark_part(), stage) is None  # no search node: no figure
    share = search_share(_profiled_model(tmp_path / "profiled.onnx"), dark_part(), stage)
    # Kernel times of a model this small are microseconds and noise on a busy machine: the real profile
    # must give a figure; the arithmetic is checked exactly on events of known duration below.
    assert share is not None and share > 0.0


def _kernel(name: str, microseconds: int) -> dict[str, object]:
    return {"cat": "Node", "name": f"{name}_kernel_time", "dur": microseconds}


def test_search_share_is_search_kernel_time_over_the_rest_and_ignores_other_events() -> None:
    events: list[dict[str, object]] = [
        _kernel("backbone_matmul", 300),
        _kernel("bank_search_matmul", 45),
        _kernel("Bank_Search_Min", 15),  # markers match whatever the case
        _kernel("head_conv", 100),
        {"cat": "Node", "name": "bank_search_matmul_fence_before", "dur": 9999},  # not kernel time
        {"cat": "Session", "name": "model_run", "dur": 9999},
    ]
    assert share_of_profile(events) == 60 / 400
    assert share_of_profile([_kernel("backbone_matmul", 300)]) is None  # no search node
    assert share_of_profile([_kernel("bank_search_matmul", 300)]) is None  # nothing to compare with
