"""Concord's terminal user interface (Textual): the coding workbench and its screens."""
