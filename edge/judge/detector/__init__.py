"""The defect detector: model card + ONNX model in onnxruntime, frames in, detections out.

Import from the submodules; this package imports nothing, so a process that only reads the config
(robot link, recorder, supervisor) does not load onnxruntime or OpenCV.
"""
