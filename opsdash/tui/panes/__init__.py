"""The dashboard's panes. Each orchestrates core/services calls in workers and renders results."""
