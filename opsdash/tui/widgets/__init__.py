"""Dashboard widgets that the panes share."""
