"""opsdash: a terminal operations dashboard and deploy gate for payment-taking web applications."""

__version__ = "0.1.0"
