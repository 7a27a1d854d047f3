"""The dashboard's panes. Each calls ops functions in workers and renders what comes back."""
