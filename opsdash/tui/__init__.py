"""The Textual dashboard. Imports the core; the core never imports this."""
