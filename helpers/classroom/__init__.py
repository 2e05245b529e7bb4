"""Layer 3, the classroom: exercises that check themselves, solutions, reset, the class server,
and running the notebooks headless. Imports from the layers below only; only the CLI imports it.
"""
