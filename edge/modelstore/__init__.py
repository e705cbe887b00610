"""Models on the appliance: the model card (what a model file is and how to trust it), the registry of
installed versions, and the hot swap that moves the line to a promoted model between parts.
"""
