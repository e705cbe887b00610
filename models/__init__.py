"""Model artifacts shipped with lineside: models/<name>/<version>/ = model.onnx + card.json (data)."""
