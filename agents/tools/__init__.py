"""Tools an agent's model can call: the built-in ones, their registry, and how calls run."""
