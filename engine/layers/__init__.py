"""Layers: named subgraphs of primitive ops with exposed ports and parameters."""
