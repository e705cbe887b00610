"""Model artifacts shipped with lineside: models/<name>/<version>/ with model.onnx and card.json. Data only."""
