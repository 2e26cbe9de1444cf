"""Codebooks: the YAML codebook format, the bundled codebooks, REFI-QDA .qdc exchange, merge suggestions.

- `codebooks.spec`    frozen dataclasses `CodebookSpec` / `CodeSpec` (a tree of any depth)
- `codebooks.loader`  `load_codebook`, `load_bundled`, `bundled_ids`, `dump_codebook`; validation
                      with line numbers; `RESERVED_HOTKEYS` and `NAMED_COLOURS` for the TUI
- `codebooks.qdc`     `export_qdc`, `import_qdc` / `read_qdc` (also the codebook of a .qdpx project)
- `codebooks.merge`   `suggest_merges` for near-identical inductive code names across coders
- `codebooks/bundled` cbt-alliance-themes, ipr-relationship-formation, alliance-ruptures, inductive

The format is documented in docs/codebook-format.md. Nothing here touches the database.
"""
