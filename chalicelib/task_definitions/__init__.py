"""Task definitions: the rewrite of a tagged revision (pure), and the flow that registers it."""
