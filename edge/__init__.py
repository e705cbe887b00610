"""The appliance runtime: frame sources, detector, decision rules, robot link, records, supervisor."""

__version__ = "0.1.0"
