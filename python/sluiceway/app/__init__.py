"""The bot runtime: settings, the signed webhook ingress, the handler context and ``Bot``."""
