"""The station on OPC UA, following the Machine Vision companion specification (OPC 40100-1)."""
