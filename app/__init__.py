"""The Textual TUI and the click CLI: thin layers over the services."""
