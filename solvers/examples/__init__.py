"""Small example models that show how a coupling from another framework maps onto msorch."""
