"""Quality gates over generated samples: expectations, bounds, style, policy."""
