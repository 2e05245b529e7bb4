"""Layer 0, core: the settings, the error tree, the message schemas, the trading rules, the plots.

Pure code: no service is called and no process started here. Every other
layer imports from this one; this one imports from none of them.
"""
