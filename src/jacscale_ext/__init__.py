"""Built-in jacscale extensions."""
