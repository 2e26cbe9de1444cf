"""Instrument definitions shipped with Concord (YAML files, loaded by analysis.scoring).

A package only so that the YAML files are installed with the code; it holds no code.
"""
